"""Expectation over Transformation averages: every query an attack makes of a randomized
pipeline takes new draws, evaluation takes draws no attack saw, and none of it depends on the batch."""

import torch
from torch import nn

from advx.defense import build_defended, reseed, set_attacking
from advx_attacks.ops import loss_and_grad
from advx_counteract.randomized import GaussianNoise


def small_net(seed=0):
    g = torch.Generator().manual_seed(seed)
    net = nn.Sequential(nn.Conv2d(1, 8, 3, padding=1), nn.ReLU(), nn.Flatten(), nn.Linear(8 * 64, 10))
    with torch.no_grad():
        for p in net.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return net.eval()


def data(n=16, seed=1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 8, 8, generator=g), torch.randint(0, 10, (n,), generator=g)


def pipeline(sigma=0.3):
    model = build_defended(small_net(), [GaussianNoise(sigma=sigma)], repeats=1, eot=1)
    reseed(model, 123)
    set_attacking(model, True)
    return model


def grad_variance(model, x, y, k, estimates=40):
    """Variance over ``estimates`` independent EOT-k gradient estimates at one point (mean over pixels)."""
    grads = torch.stack([loss_and_grad(model, x, y, None, "ce", eot=k)[2] for _ in range(estimates)])
    return grads.var(0).mean().item()


def test_eot_k_gradient_variance_falls_as_one_over_k():
    x, y = data()
    model = pipeline()
    v = {k: grad_variance(model, x, y, k) for k in (1, 4, 16)}
    assert v[1] > 0
    # 1/k within the sampling error of a variance from 40 estimates (about ±45 % at 2 sigma)
    assert 0.5 / 4 < v[4] / v[1] < 2 / 4, v
    assert 0.5 / 16 < v[16] / v[1] < 2 / 16, v


def test_eot_20_gradient_differs_from_eot_1_and_repeated_queries_take_new_draws():
    x, y = data()
    g1 = loss_and_grad(pipeline(), x, y, None, "ce", eot=1)[2]
    g20 = loss_and_grad(pipeline(), x, y, None, "ce", eot=20)[2]
    rel = ((g20 - g1).norm() / g1.norm()).item()
    assert rel > 0.05, rel
    model = pipeline()
    assert not torch.equal(model(x), model(x))  # the same point queried twice: two draws


def test_evaluation_draws_are_fixed_and_unseen_by_the_attack():
    x, _ = data()
    model = build_defended(small_net(), [GaussianNoise(sigma=0.3)], repeats=1, eot=1)
    reseed(model, 7)
    first = model(x)
    assert torch.equal(first, model(x))  # evaluation: one prediction per image, call after call
    set_attacking(model, True)
    attacked = model(x)
    set_attacking(model, False)
    assert not torch.equal(first, attacked)  # the attack's first draw is not the evaluation draw
    assert torch.equal(first, model(x))


def test_attack_draws_depend_on_the_point_not_on_the_batch():
    x, _ = data()
    whole = pipeline()
    a = torch.cat([whole(x) for _ in range(3)][2:])  # third query of every image
    part = pipeline()
    for _ in range(2):
        part(x[:5])
        part(x[5:])
    b = torch.cat([part(x[:5]), part(x[5:])])
    assert torch.allclose(a, b, atol=1e-6)
    reseed(part, 123)  # a reseed forgets the queries: the first query's draws again
    assert torch.allclose(part(x), pipeline()(x), atol=1e-6)
