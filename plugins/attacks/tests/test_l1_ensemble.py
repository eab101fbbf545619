"""The l1 AutoAttack (Croce & Hein, "Mind the box", ICML 2021): FAB-L1's boundary projection
against a generic LP solver, and FAB-L1, Square-L1 and the whole l1 ensemble against the authors'
own code (pyautoattack, norm 'L1') on the same digits model and images."""

import numpy as np
import pytest
import torch

import advx
from advx_attacks.ops import project_onto_hyperplane


def _robust(model, x, y):
    with torch.no_grad():
        return int((model(x).argmax(1) == y).sum())


def _inside_l1(x_adv, x, eps):
    assert ((x_adv - x).flatten(1).abs().sum(1) <= eps * (1 + 1e-5)).all()
    assert x_adv.min() >= 0 and x_adv.max() <= 1


def test_the_l1_boundary_projection_is_the_least_l1_step():
    from scipy.optimize import linprog

    g = torch.Generator().manual_seed(0)
    n, d = 8, 12
    w = torch.randn(n, d, generator=g)
    w[0, :4] = 0.0  # coordinates that cannot help
    c = torch.randn(n, generator=g)
    c[1] = 100.0    # out of the box's reach: every useful coordinate goes to its face
    up, down = torch.rand(n, d, generator=g), torch.rand(n, d, generator=g)
    out = project_onto_hyperplane(w, c, up, down, "l1").double()
    for i in range(n):
        if i == 1:
            reach = torch.where(w[i] > 0, up[i], -down[i]) * (w[i] != 0)
            assert torch.allclose(out[i], reach.double(), atol=1e-6)
            continue
        # d = u - v, u, v >= 0: minimise Σ u + v subject to w·(u - v) = c and the box
        res = linprog(np.ones(2 * d), A_eq=torch.cat([w[i], -w[i]]).double().numpy()[None],
                      b_eq=[float(c[i])], bounds=[(0, float(u)) for u in up[i]] + [(0, float(v)) for v in down[i]])
        assert res.status == 0
        assert abs(out[i].abs().sum().item() - res.fun) < 1e-5, "least l1 norm"
        assert abs((w[i].double() * out[i]).sum().item() - float(c[i])) < 1e-5, "on the plane"
        assert (out[i] <= up[i].double() + 1e-7).all() and (out[i] >= -down[i].double() - 1e-7).all()


def _reference(name, model, eps):
    """The authors' own FAB-T and Square in l1, at the budgets our side runs."""
    if name == "fab":
        from pyautoattack.fab_pt import FABAttack_PT

        return FABAttack_PT(model, norm="L1", n_iter=30, eps=eps, targeted=True, n_target_classes=9, seed=0,
                            device="cpu")
    from pyautoattack.square import SquareAttack

    return SquareAttack(model, norm="L1", n_queries=300, eps=eps, seed=0, device="cpu")


@pytest.mark.parametrize("name, kwargs, breaks, slack", [("fab", {"steps": 30}, 50, 1),
                                                         ("square", {"queries": 300}, 20, 2)])
def test_fab_and_square_in_l1_are_as_strong_as_the_reference(digits, name, kwargs, breaks, slack):
    """``breaks``: how many of the 100 samples must fall at all; ``slack``: samples we may keep
    robust beyond the reference (Square's random search varies by a sample or two)."""
    model, x, y = digits
    x, y = x[:100], y[:100]
    eps = 2.0
    x_adv = advx.create("attack", name, norm="l1", eps=eps, **kwargs)(model, x, y,
                                                                      generator=torch.Generator().manual_seed(0))
    _inside_l1(x_adv, x, eps)
    x_ref = _reference(name, model, eps).perturb(x, y)
    assert _robust(model, x_adv, y) < _robust(model, x, y) - breaks
    assert _robust(model, x_adv, y) <= _robust(model, x_ref, y) + slack


def test_the_l1_ensemble_runs_the_reference_settings():
    aa = advx.create("attack", "autoattack", norm="l1", eps=1.0)
    assert aa.members == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert aa.member("apgd-ce").restarts == 5 and aa.member("apgd-ce").l1_schedule
    assert aa.member("apgd-t").targets == 5 and aa.member("fab-t").targets == 9
    assert all(aa.member(m).norm == "l1" for m in aa.members)
    assert advx.create("attack", "autoattack", eps=1 / 255).member("apgd-ce").restarts == 1  # linf unchanged


@pytest.mark.parametrize("eps", [1.5])
def test_l1_autoattack_is_as_strong_as_the_reference(digits, eps):
    from pyautoattack import AutoAttack

    model, x, y = digits
    x, y = x[:40], y[:40]
    ours = advx.create("attack", "autoattack", norm="l1", eps=eps, steps=10, queries=100)
    x_adv = ours(model, x, y, generator=torch.Generator().manual_seed(0))
    _inside_l1(x_adv, x, eps)
    ref = AutoAttack(model, norm="L1", eps=eps, version="standard", device="cpu", seed=0)
    ref.verbose = False
    for member in (ref.apgd, ref.apgd_targeted, ref.fab):
        member.n_iter = 10
    ref.square.n_queries = 100
    x_ref = ref.run_standard_evaluation(x, y, batch_size=40)
    x_ref = x_ref[0] if isinstance(x_ref, tuple) else x_ref
    assert _robust(model, x_adv, y) <= _robust(model, x_ref, y) + 1


def test_the_evaluator_runs_and_checks_the_l1_ensemble(digits, tmp_path):
    model, x, y = digits
    res = advx.evaluate(model, (x[:24], y[:24]), attack={"name": "autoattack", "steps": 5, "queries": 20},
                        eps=1.5, norm="l1", out=tmp_path / "l1.h5", device="cpu")
    cell = next(c for c in res.cells if c.cell.attack != "clean")
    assert cell.finished and cell.info["budget"] == "l1 1.5"  # named beside the number
    clean = next(c for c in res.cells if c.cell.attack == "clean")
    assert cell.arrays["correct"].sum() < clean.arrays["correct"].sum() - 6
