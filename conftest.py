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

# ART (a peer library the attack tests compare against) writes ~/.art/config.json on its first
# import; two workers importing it at once on a fresh machine race, and the loser fails with
# "NameError: name '_config' is not defined" (art/config.py). Write the file ART would write, once,
# from the controller before any worker starts.
if not os.environ.get("PYTEST_XDIST_WORKER"):
    _art = os.path.join(os.path.expanduser("~"), ".art")
    if os.access(os.path.expanduser("~"), os.W_OK) and not os.path.exists(os.path.join(_art, "config.json")):
        import json

        os.makedirs(_art, exist_ok=True)
        with open(os.path.join(_art, "config.json"), "w", encoding="utf8") as f:
            json.dump({"ART_DATA_PATH": os.path.join(_art, "data")}, f, indent=4)

# the CLI's component catalog goes to a folder of this test session, never the user's ~/.cache
if "ADVX_CACHE_DIR" not in os.environ:
    import tempfile

    os.environ["ADVX_CACHE_DIR"] = tempfile.mkdtemp(prefix="advx-test-cache-")
