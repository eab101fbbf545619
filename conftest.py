"""Suite-wide settings, for tests/ and every plugin's tests.

Under pytest-xdist (``-n 2`` in pyproject) each worker, and every process a test starts, uses one
thread: two workers with two OpenMP threads each on a 2-core machine spin against each other and
run several times slower than one.
"""

import os

if os.environ.get("PYTEST_XDIST_WORKER"):
    os.environ["OMP_NUM_THREADS"] = "1"
    os.environ["MKL_NUM_THREADS"] = "1"
    import torch

    torch.set_num_threads(1)

# the CLI's component catalog goes to a folder of this test session, never the user's ~/.cache
if "ADVX_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["ADVX_CACHE_DIR"] = tempfile.mkdtemp(prefix="advx-test-cache-")
