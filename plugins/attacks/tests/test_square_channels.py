"""Square-L2 on a colour model against the authors' own code (pyautoattack): Algorithm 3 splits
the freed budget per channel (each channel's mass in the two windows plus a 1/C share of what the
point leaves unused), so a colour model is where a whole-image reading would differ."""

import pytest
import torch
from torch import nn

import advx
from advx.testing import digits_model


def _colour(x):
    """Three channels that carry the digit differently, so the channels matter apart."""
    return torch.cat([x, 1 - x, x.flip(-1)], 1)


@pytest.fixture(scope="module")
def colour_digits():
    _, data = digits_model()
    with torch.random.fork_rng():
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 16, 3, padding=1), nn.ReLU(), nn.Conv2d(16, 32, 3, padding=1, stride=2),
                            nn.ReLU(), nn.Flatten(), nn.Linear(32 * 4 * 4, 10))
        opt = torch.optim.Adam(net.parameters(), lr=3e-3)
        x, y = _colour(data.x_train), data.y_train
        for _ in range(15):
            for idx in torch.randperm(len(x)).split(64):
                opt.zero_grad()
                nn.functional.cross_entropy(net(x[idx]), y[idx]).backward()
                opt.step()
    net.eval()
    return net, _colour(data.x_test[:100]), data.y_test[:100]


def _robust(model, x, y):
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


@pytest.mark.parametrize("eps", [1.0])
def test_square_l2_on_three_channels_is_as_strong_as_the_reference(colour_digits, eps):
    from pyautoattack.square import SquareAttack

    model, x, y = colour_digits
    assert _robust(model, x, y) >= 90  # a model worth attacking
    x_adv = advx.create("attack", "square", norm="l2", eps=eps, queries=300)(
        model, x, y, generator=torch.Generator().manual_seed(0))
    assert ((x_adv - x).flatten(1).norm(dim=1) <= eps * (1 + 1e-5)).all()
    x_ref = SquareAttack(model, norm="L2", n_queries=300, eps=eps, seed=0, device="cpu").perturb(x, y)
    assert _robust(model, x_adv, y) < _robust(model, x, y) - 10
    assert _robust(model, x_adv, y) <= _robust(model, x_ref, y) + 2
