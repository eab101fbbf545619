import pytest
import torch

from advx.testing import LinearModel, digits_model


@pytest.fixture(scope="session")
def digits():
    model, data = digits_model()
    return model, data.x_test[:200].clone(), data.y_test[:200].clone()


def _linear(classes):
    g = torch.Generator().manual_seed(0)
    model = LinearModel(torch.randn(classes, 16, generator=g), torch.zeros(classes)).eval()
    x = 0.5 + 0.1 * (torch.rand(64, 1, 4, 4, generator=g) - 0.5)
    return model, x, model(x).argmax(1)


@pytest.fixture()
def binary_linear():
    """2-class linear model: maximising CE inside a ball and crossing the boundary coincide, so a
    bounded attack must succeed exactly when eps exceeds the minimal distance."""
    return _linear(2)


@pytest.fixture()
def linear():
    """3-class linear model on 1x4x4 inputs near 0.5 (the box never binds), correctly classified."""
    return _linear(3)
