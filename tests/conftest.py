import os

import pytest

os.environ.setdefault("ADVX_PROGRESS", "0")


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
