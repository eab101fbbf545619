"""APGD-T, FAB-T, Square and the AutoAttack ensemble against analytic linear models whose minimal
adversarial distance is known exactly (see advx.testing.LinearModel)."""

import pytest
import torch
from torch import nn

import advx
from advx.errors import ComponentParameterError
from advx_attacks.ops import project_onto_hyperplane
from advx_attacks.square import fraction_schedule

from .conftest import _linear


def fooled(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


def norms(d, norm):
    d = d.flatten(1)
    return d.abs().amax(1) if norm == "linf" else d.norm(dim=1)


@pytest.fixture()
def five():
    """5-class linear model (the targeted DLR loss needs at least 4 classes)."""
    return _linear(5)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_hyperplane_projection_is_the_exact_minimum(norm):
    g = torch.Generator().manual_seed(0)
    w, c = torch.randn(6, 12, generator=g), torch.randn(6, generator=g)
    room = torch.full((6, 12), 100.0)
    d = project_onto_hyperplane(w, c, room, room, norm)
    assert torch.allclose((w * d).sum(1), c, atol=1e-5)
    dual = w.abs().sum(1) if norm == "linf" else w.norm(dim=1)  # unconstrained optimum |c| / ||w||_dual
    assert torch.allclose(norms(d, norm), c.abs() / dual, atol=1e-6)
    tight = torch.rand(6, 12, generator=g) * 0.05
    d = project_onto_hyperplane(w, c, tight, tight, norm)
    assert (d <= tight + 1e-7).all() and (d >= -tight - 1e-7).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_apgd_t_succeeds_just_above_and_never_below_the_optimum(five, norm):
    model, x, y = five
    opt = model.minimal_distance(x, y, norm)
    atk = advx.create("attack", "apgd-t", norm=norm, steps=30)
    assert not fooled(model, atk(model, x, y, eps=opt * 0.95), y).any()
    above = atk(model, x, y, eps=opt * 1.05)
    assert fooled(model, above, y).all()
    assert (norms(above - x, norm) <= opt * 1.05 + 1e-5).all()


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_fab_finds_the_minimal_adversarial_within_1_25x(five, norm):
    model, x, y = five
    opt = model.minimal_distance(x, y, norm)
    x_adv = advx.create("attack", "fab", norm=norm, steps=30, targets=4)(model, x, y, eps=10.0)
    assert fooled(model, x_adv, y).all()
    ratio = norms(x_adv - x, norm) / opt
    assert (ratio >= 1 - 1e-4).all(), "smaller than the proven minimum"
    assert (ratio <= 1.25).all(), f"worst ratio {ratio.max():.3f}"


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_untargeted_fab_heads_for_the_closest_boundary(five, norm):
    """On a linear model the closest linearised boundary is the true one: untargeted FAB (the
    plus version's member) finds the proven minimum within 1.25x, like FAB-T over all targets."""
    model, x, y = five
    opt = model.minimal_distance(x, y, norm)
    x_adv = advx.create("attack", "fab", norm=norm, steps=30, targeted=False)(model, x, y, eps=10.0)
    assert fooled(model, x_adv, y).all()
    ratio = norms(x_adv - x, norm) / opt
    assert (ratio >= 1 - 1e-4).all() and (ratio <= 1.25).all(), f"ratios {ratio.tolist()}"


def test_the_plus_version_runs_the_references_members_and_restarts():
    aa = advx.create("attack", "autoattack", version="plus")
    assert aa.members == ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")
    assert [getattr(aa.member(m), "restarts", 1) for m in aa.members] == [5, 5, 5, 1, 1, 1]
    assert aa.member("fab").targeted is False and aa.member("fab-t").targeted is True


def test_fab_returns_the_clean_input_when_the_minimum_exceeds_eps(five):
    model, x, y = five
    opt = model.minimal_distance(x, y, "linf")
    x_adv = advx.create("attack", "fab", steps=20)(model, x, y, eps=opt * 0.9)
    assert torch.equal(x_adv, x)


@pytest.mark.parametrize("norm", ["linf", "l2"])
def test_square_stays_in_budget_and_breaks_above_the_optimum(five, norm):
    model, x, y = five
    opt = model.minimal_distance(x, y, norm)
    atk = advx.create("attack", "square", norm=norm, queries=500)
    g = torch.Generator().manual_seed(0)
    assert not fooled(model, atk(model, x, y, eps=opt * 0.95, generator=g), y).any()
    above = atk(model, x, y, eps=opt * 1.5, generator=g)
    assert (norms(above - x, norm) <= opt * 1.5 + 1e-5).all()
    assert fooled(model, above, y).float().mean() >= 0.9


class Counting(nn.Module):
    """Counts the samples each forward sees and whether any backward ran."""

    def __init__(self, model):
        super().__init__()
        self.model, self.rows, self.backwards = model, [], 0

    def forward(self, x):
        self.rows.append(len(x))
        out = self.model(x)
        if out.requires_grad:
            out.register_hook(lambda g: setattr(self, "backwards", self.backwards + 1))
        return out


def test_square_is_forward_only_and_queries_only_the_still_robust(five):
    model, x, y = five
    counting = Counting(model)
    queries = 50
    x_adv = advx.create("attack", "square", queries=queries)(counting, x, y, eps=10.0,
                                                             generator=torch.Generator().manual_seed(0))
    assert counting.backwards == 0
    assert fooled(model, x_adv, y).all()
    assert counting.rows[:2] == [len(x), len(x)]  # clean margin, then the stripes start
    later = counting.rows[2:]
    assert len(later) < queries and all(b <= a for a, b in zip(later, later[1:]))  # shrinking batches


def test_square_is_reproducible_from_its_generator(five):
    model, x, y = five
    atk = advx.create("attack", "square", queries=30, eps=0.01)
    a = atk(model, x, y, generator=torch.Generator().manual_seed(3))
    b = atk(model, x, y, generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b)


def test_square_schedule_halves_at_the_papers_iterations():
    assert fraction_schedule(0.8, 10, 10000) == 0.8
    assert fraction_schedule(0.8, 11, 10000) == 0.4
    assert fraction_schedule(0.8, 9000, 10000) == pytest.approx(0.8 / 512)
    assert fraction_schedule(0.8, 500, 1000) == fraction_schedule(0.8, 5000, 10000)  # rescaled budget


def test_autoattack_records_which_member_broke_each_sample(five):
    model, x, y = five
    y = y.clone()
    y[:3] = (y[:3] + 1) % 5  # three samples misclassified without any perturbation
    opt = model.minimal_distance(x[3:], y[3:], "linf")
    eps = torch.cat([torch.zeros(3), torch.where(torch.arange(len(opt)) % 2 == 0, opt * 1.05, opt * 0.9)])
    aa = advx.create("attack", "autoattack", steps=20, queries=50)
    x_adv, log = aa.attack_with_log(model, x, y, eps=eps, generator=torch.Generator().manual_seed(0))
    codes = log["broken_by"]
    assert aa.members == ("apgd-ce", "apgd-t", "fab-t", "square")
    assert (codes[:3] == -2).all()
    broken = fooled(model, x_adv, y)
    assert torch.equal(broken[3:], codes[3:] >= 0)
    assert (codes[3::2][: len(opt[::2])] >= 0).all()  # everything above the optimum is broken ...
    assert (codes[4::2] == -1).all()                   # ... nothing below it
    assert torch.equal(aa(model, x, y, eps=eps, generator=torch.Generator().manual_seed(0)), x_adv)


def test_autoattack_versions_and_member_lists():
    rand = advx.create("attack", "autoattack", version="rand")
    assert rand.members == ("apgd-ce", "apgd-dlr") and rand.member("apgd-ce").eot == 20
    custom = advx.create("attack", "autoattack", attacks=["square", "apgd-ce"], queries=7)
    assert custom.members == ("square", "apgd-ce") and custom.member("square").queries == 7


@pytest.mark.parametrize("name,params,needle", [
    ("square", {"queries": 0}, "queries"), ("autoattack", {"version": "nonsense"}, "version"),
    ("autoattack", {"attacks": ["apgd-ce", "nope"]}, "nope"), ("fab", {"targets": 0}, "targets"),
    ("apgd-t", {"eot": 0}, "eot")])
def test_bad_parameters_name_the_field(name, params, needle):
    with pytest.raises(ComponentParameterError, match=needle):
        advx.create("attack", name, **params)
