import os

# Two workers share the CI machine's two cores (pyproject: -n 2): one torch thread each, here and
# in the processes the tests start, instead of two each fighting over the same cores.
os.environ.setdefault("OMP_NUM_THREADS", "1")

import pytest  # noqa: E402
import torch  # noqa: E402

os.environ.setdefault("ADVX_PROGRESS", "0")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))


@pytest.fixture()
def tiny_config():
    """A shrunk quickstart as a dict: digits, 3 epochs, FGSM + PGD, one defence."""
    return {
        "experiment": {"name": "tiny", "seed": 0},
        "data": {"name": "digits", "test_limit": 120, "splits": 3},
        "model": {"name": "digits-cnn", "train": {"epochs": 3, "batch_size": 64, "lr": 2e-3}},
        "defense": [{"label": "guo", "chain": [{"name": "crop-rescale", "min_scale": 0.75, "max_scale": 1.0}],
                     "repeats": 2}],
        "attack": [{"name": "fgsm", "eps": 0.1, "label": "FGSM"},
                   {"name": "pgd", "eps": 0.1, "steps": 3, "label": "PGD-3"}],
        "evaluate": {"chunk_size": 50, "batch_size": 64, "metrics": ["accuracy", "worst-case", "splits",
                                                                      "base-correct"]},
    }
