"""pytest fixtures for plugin authors: ``pytest_plugins = ["advx.pytest_fixtures"]`` in a
``conftest.py`` gives a plugin's tests a trained model, data and the trainer's context without
writing them. Built on :mod:`advx.testing` (whose ``check_*`` functions assert the contracts)."""

from __future__ import annotations

import pytest

from advx import testing


@pytest.fixture(scope="session")
def advx_digits():
    """(model, data): a small CNN trained one epoch on scikit-learn's digits (cached per process;
    do not modify the model) and its DataBundle."""
    return testing.digits_model(epochs=1)


@pytest.fixture()
def advx_images(advx_digits):
    """(x, y): 16 test digits as [0, 1] float images (N x 1 x 8 x 8) and their labels."""
    from advx.data.bundle import as_float

    _, data = advx_digits
    return as_float(data.x_test[:16]), data.y_test[:16]


@pytest.fixture()
def advx_train_context(advx_digits):
    """A TrainContext over the digits' training set, as the trainer builds it."""
    model, data = advx_digits
    return testing.make_context(model, data)


@pytest.fixture()
def advx_train_batch(advx_digits):
    """A training Batch of 32 digits with one-hot soft labels."""
    return testing.make_batch(advx_digits[1])
