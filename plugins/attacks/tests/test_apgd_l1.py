"""l1-APGD (Croce & Hein, ICML 2021): the l1-box projection against a generic solver, and the
attack against the authors' own code (pyautoattack's APGDAttack, norm 'L1') on the same model."""

import numpy as np
import pytest
import torch

import advx
from advx_attacks.ops import project_l1


def test_the_l1_box_projection_is_the_euclidean_one():
    from scipy.optimize import minimize

    torch.manual_seed(0)
    n, d = 6, 30
    x = torch.rand(n, d)
    x[:, :8], x[:, 8:16] = 0.0, 1.0  # pixels at the bounds: the box decides there
    delta = torch.randn(n, d) * 0.5
    eps = torch.tensor([2.0, 2.0, 0.5, 5.0, 100.0, 0.0])
    out = project_l1(x, delta, eps, (0.0, 1.0))
    assert (out.abs().sum(1) <= eps + 1e-6).all() and ((x + out) >= 0).all() and ((x + out) <= 1).all()
    for i in range(n):
        yi, xi, ei = delta[i].double().numpy(), x[i].double().numpy(), float(eps[i])

        def f(z, yi=yi):  # d = u - v with u, v >= 0: a smooth QP
            r = z[:d] - z[d:] - yi
            return 0.5 * r @ r, np.concatenate([r, -r])

        cons = [{"type": "ineq", "fun": lambda z, e=ei: e - z.sum()},
                {"type": "ineq", "fun": lambda z, xi=xi: 1 - xi - (z[:d] - z[d:])},
                {"type": "ineq", "fun": lambda z, xi=xi: xi + (z[:d] - z[d:])}]
        res = minimize(f, np.zeros(2 * d), jac=True, bounds=[(0, None)] * (2 * d), constraints=cons,
                       method="SLSQP", options={"maxiter": 500, "ftol": 1e-12})
        assert np.abs(res.x[:d] - res.x[d:] - out[i].double().numpy()).max() < 1e-5


@pytest.mark.parametrize("schedule", [True, False])
def test_l1_apgd_is_as_strong_as_the_reference(digits, schedule):
    from pyautoattack.autopgd_base import APGDAttack

    model, x, y = digits
    x, y = x[:100], y[:100]
    eps = 2.0
    ours = advx.create("attack", "apgd", norm="l1", eps=eps, steps=50, l1_schedule=schedule)
    x_adv = ours(model, x, y, generator=torch.Generator().manual_seed(0))
    assert ((x_adv - x).flatten(1).abs().sum(1) <= eps + 1e-4).all() and x_adv.min() >= 0 and x_adv.max() <= 1
    torch.manual_seed(0)
    ref = APGDAttack(model, n_iter=50, norm="L1", eps=eps, seed=0, loss="ce", device="cpu", use_largereps=schedule)
    x_ref = ref.perturb(x, y)
    with torch.no_grad():
        ours_acc = (model(x_adv).argmax(1) == y).float().mean().item() * 100
        ref_acc = (model(x_ref).argmax(1) == y).float().mean().item() * 100
        clean = (model(x).argmax(1) == y).float().mean().item() * 100
    assert ours_acc < clean - 30, "the attack breaks most samples at this budget"
    assert ours_acc <= ref_acc + 2.0, f"ours {ours_acc:.1f}% vs the reference's {ref_acc:.1f}%"
