"""Attacks against an analytic linear model whose minimal adversarial is known exactly."""

import pytest
import torch

import advx


def fooled(model, x_adv, y):
    with torch.no_grad():
        return model(x_adv).argmax(1) != y


@pytest.mark.parametrize("clip", ["point", "perturbation"])
@pytest.mark.parametrize("norm", ["l2", "linf"])
def test_deepfool_lands_within_1_25x_of_the_optimum(linear, norm, clip):
    model, x, y = linear
    opt = model.minimal_distance(x, y, norm)
    x_adv = advx.create("attack", "deepfool", norm=norm, clip=clip)(model, x, y)
    assert fooled(model, x_adv, y).all()
    d = (x_adv - x).flatten(1)
    got = d.norm(dim=1) if norm == "l2" else d.abs().amax(1)
    ratio = got / opt
    assert (ratio >= 1 - 1e-4).all(), "found a perturbation smaller than the proven minimum"
    assert (ratio <= 1.25).all(), f"worst ratio {ratio.max():.3f}"


def test_cw_lands_within_1_25x_of_the_optimum(linear):
    model, x, y = linear
    opt = model.minimal_distance(x, y, "l2")
    x_adv = advx.create("attack", "cw", c=0.1, steps=200, binary_search_steps=9, lr=0.01)(model, x, y)
    assert fooled(model, x_adv, y).all()
    ratio = (x_adv - x).flatten(1).norm(dim=1) / opt
    assert (ratio >= 1 - 1e-3).all() and (ratio <= 1.25).all(), f"ratios in [{ratio.min():.3f}, {ratio.max():.3f}]"


@pytest.mark.parametrize("name,params", [("fgsm", {}), ("bim", {"steps": 10}), ("pgd", {"steps": 20}),
                                         ("apgd", {"steps": 20})])
def test_linf_attacks_succeed_just_above_and_fail_just_below_the_optimum(binary_linear, name, params):
    model, x, y = binary_linear
    opt = model.minimal_distance(x, y, "linf")
    above = advx.create("attack", name, **params)(model, x, y, eps=opt * 1.05)
    below = advx.create("attack", name, **params)(model, x, y, eps=opt * 0.95)
    assert not fooled(model, below, y).any(), "fooled below the minimal distance: the eps-ball leaks"
    rate = fooled(model, above, y).float().mean()
    assert rate == 1.0, f"{name} fooled only {rate:.0%} with eps 5 % above the optimum"


@pytest.mark.parametrize("name", ["pgd", "apgd"])
def test_dlr_loss_attacks_respect_the_optimum(linear, name):
    model, x, y = linear
    opt = model.minimal_distance(x, y, "linf")
    atk = advx.create("attack", name, loss="dlr", steps=30)
    assert not fooled(model, atk(model, x, y, eps=opt * 0.95), y).any()
    assert fooled(model, atk(model, x, y, eps=opt * 1.05), y).float().mean() >= 0.95


def test_dlr_needs_three_classes(binary_linear):
    model, x, y = binary_linear
    with pytest.raises(ValueError, match="at least 3 classes"):
        advx.create("attack", "apgd", loss="dlr")(model, x, y)


@pytest.mark.parametrize("name", ["pgd", "apgd"])
def test_l2_attacks_respect_the_optimum(binary_linear, name):
    model, x, y = binary_linear
    opt = model.minimal_distance(x, y, "l2")
    atk = advx.create("attack", name, norm="l2", steps=30)
    above, below = atk(model, x, y, eps=opt * 1.05), atk(model, x, y, eps=opt * 0.95)
    assert not fooled(model, below, y).any()
    assert fooled(model, above, y).all()
    assert ((above - x).flatten(1).norm(dim=1) <= opt * 1.05 + 1e-5).all()


@pytest.mark.parametrize("name", ["fgsm", "bim", "pgd", "apgd", "cw"])
def test_targeted_attacks_reach_the_target(linear, name):
    model, x, y = linear
    target = (y + 1) % 3
    params = {"eps": 0.5} if name != "cw" else {"c": 1.0, "steps": 100}
    if name in ("bim", "pgd", "apgd"):
        params["steps"] = 30
    x_adv = advx.create("attack", name, **params)(model, x, y, target=target)
    with torch.no_grad():
        hit = (model(x_adv).argmax(1) == target).float().mean()
    assert hit >= (0.9 if name == "fgsm" else 0.99), f"{name} reached the target on {hit:.0%}"


def test_per_sample_eps_is_honoured(linear):
    model, x, y = linear
    eps = torch.linspace(0.0, 0.2, len(x))
    x_adv = advx.create("attack", "pgd", steps=5)(model, x, y, eps=eps)
    assert ((x_adv - x).flatten(1).abs().amax(1) <= eps + 1e-6).all()
    assert torch.equal(x_adv[0], x[0])


def test_cw_default_search_costs_less_than_the_papers_and_stays_near_the_optimum(linear):
    model, x, y = linear
    opt = model.minimal_distance(x, y, "l2")
    calls = {"n": 0}

    class Counting(torch.nn.Module):
        def forward(self, z):
            calls["n"] += len(z)
            return model(z)

    full = dict(c=0.1, steps=200, binary_search_steps=9, lr=0.01)
    cost = {}
    for label, settings in {"paper": dict(warm_start=False, search_rtol=0.0), "warm only": dict(search_rtol=0.0),
                            "paper + rtol": dict(warm_start=False), "default": {}}.items():
        calls["n"] = 0
        x_adv = advx.create("attack", "cw", **full, **settings)(Counting(), x, y)
        cost[label] = calls["n"]
        assert fooled(model, x_adv, y).all(), label
        ratio = (x_adv - x).flatten(1).norm(dim=1) / opt
        assert (ratio >= 1 - 1e-3).all() and (ratio <= 1.25).all(), f"{label}: ratios in [{ratio.min():.3f}, {ratio.max():.3f}]"
    # settled samples skip the rest of the search, with and without warm starts (a warm-started
    # step starts adversarial; it must still bracket c, or no sample ever settles)
    assert cost["paper + rtol"] < cost["paper"] and cost["default"] < cost["warm only"]
    assert cost["default"] < 0.5 * cost["paper"], cost


def test_cw_warm_start_begins_each_step_at_the_best_point_so_far(linear):
    model, x, y = linear
    inputs = []

    class Recording(torch.nn.Module):
        def forward(self, z):
            inputs.append(z.detach().clone())
            return model(z)

    one = dict(c=10.0, steps=20, abort_early=False, search_rtol=0.0)
    best_after_one = advx.create("attack", "cw", binary_search_steps=1, **one)(model, x, y)
    assert fooled(model, best_after_one, y).all()
    for warm, start in ((True, best_after_one), (False, x)):
        inputs.clear()
        advx.create("attack", "cw", binary_search_steps=2, warm_start=warm, **one)(Recording(), x, y)
        torch.testing.assert_close(inputs[20], start, atol=1e-5, rtol=0)  # the second step's first point
