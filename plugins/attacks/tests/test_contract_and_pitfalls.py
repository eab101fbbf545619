"""Contract of every attack, and the pitfalls peer libraries hit (SPEC: 'Pitfalls')."""

import math

import pytest
import torch
from torch import nn

import advx
from advx.evaluation.counting import CountingModel
from advx.testing import check_attack
from advx_attacks.apgd import checkpoints
from advx_attacks.ops import dlr_targeted_loss, other_max

ALL = [("gaussian", {}), ("fgsm", {"eps": 0.1}), ("bim", {"eps": 0.1, "steps": 5}),
       ("pgd", {"eps": 0.1, "steps": 5}), ("pgd", {"eps": 1.0, "norm": "l2", "steps": 5, "alpha": 0.3}),
       ("apgd", {"eps": 0.1, "steps": 10}), ("apgd", {"eps": 1.0, "norm": "l2", "steps": 10}),
       ("cw", {"steps": 10, "binary_search_steps": 2}), ("deepfool", {"steps": 5}),
       ("deepfool", {"steps": 5, "norm": "linf"}), ("apgd-t", {"eps": 0.1, "steps": 5, "targets": 3}),
       ("fab", {"eps": 0.1, "steps": 5, "targets": 2}), ("fab", {"eps": 1.0, "norm": "l2", "steps": 5, "targets": 2}),
       ("square", {"eps": 0.1, "queries": 20}), ("square", {"eps": 1.0, "norm": "l2", "queries": 20}),
       ("autoattack", {"eps": 0.1, "steps": 5, "targets": 2, "queries": 20})]


@pytest.mark.parametrize("name,params", ALL)
def test_contract(digits, name, params):
    model, x, y = digits
    check_attack(advx.create("attack", name, **params), model, x[:32], y[:32])


def test_inputs_at_the_bounds_stay_finite(digits):
    model, x, y = digits
    x = (x[:16] > 0.5).float()  # every pixel exactly 0 or 1
    for name, params in ALL:
        x_adv = advx.create("attack", name, **params)(model, x, y[:16])
        assert torch.isfinite(x_adv).all(), name


def test_cw_margin_uses_the_largest_other_logit_even_when_all_are_negative():
    logits = torch.tensor([[-5.0, -1.0, -3.0]])
    assert other_max(logits, torch.tensor([1])).item() == -3.0
    cw = advx.create("attack", "cw")
    assert cw.margin(logits, torch.tensor([1]), None).item() == pytest.approx(2.0)


def test_cw_stops_early_per_sample_not_per_batch(linear):
    model, x, y = linear
    # an already-misclassified sample next to hard ones must not stop the others
    x_adv = advx.create("attack", "cw", c=0.1, steps=100, binary_search_steps=4)(model, x, y)
    with torch.no_grad():
        assert (model(x_adv).argmax(1) != y).float().mean() > 0.95


def test_cw_runs_only_the_samples_still_searching(linear):
    model, x, y = linear
    seen = []

    class Counting(nn.Module):
        def forward(self, z):
            seen.append(len(z))
            return model(z)

    cw = advx.create("attack", "cw", c=0.1, steps=100, binary_search_steps=3)
    together = cw(Counting(), x, y)
    assert sum(seen) < len(x) * 3 * 100 and min(seen) < len(x)  # finished samples left the batch
    alone = torch.cat([cw(model, x[i:i + 1], y[i:i + 1]) for i in range(4)])  # samples are not coupled
    torch.testing.assert_close(together[:4], alone, atol=1e-5, rtol=0)


def test_deepfool_overshoot_is_applied(linear):
    model, x, y = linear
    small = advx.create("attack", "deepfool", overshoot=0.0)(model, x, y)
    big = advx.create("attack", "deepfool", overshoot=0.5)(model, x, y)
    ratio = (big - x).flatten(1).norm(dim=1) / (small - x).flatten(1).norm(dim=1)
    assert ratio.mean() > 1.3


def test_deepfool_leaves_already_misclassified_samples_alone(linear):
    model, x, y = linear
    wrong = (y + 1) % 3
    x_adv = advx.create("attack", "deepfool")(model, x, wrong)
    assert torch.equal(x_adv, x)


class ZeroGrad(nn.Module):
    """Constant logits: every input gradient is exactly zero."""

    def forward(self, x):
        return torch.zeros(x.shape[0], 3) + torch.tensor([1.0, 0.0, 0.0]) + 0 * x.flatten(1).sum(1, keepdim=True)


@pytest.mark.parametrize("name", ["pgd", "apgd"])
def test_l2_zero_gradient_guard(name):
    x = torch.rand(4, 1, 4, 4)
    y = torch.zeros(4, dtype=torch.long)
    x_adv = advx.create("attack", name, norm="l2", eps=0.5, steps=3)(ZeroGrad(), x, y)
    assert torch.isfinite(x_adv).all()
    assert ((x_adv - x).flatten(1).norm(dim=1) <= 0.5 + 1e-5).all()


def test_pgd_l2_random_start_is_applied():
    x = torch.rand(4, 1, 4, 4) * 0.5 + 0.25
    y = torch.zeros(4, dtype=torch.long)
    x_adv = advx.create("attack", "pgd", norm="l2", eps=0.5, steps=1, alpha=0.0)(ZeroGrad(), x, y,
                                                                             generator=torch.Generator().manual_seed(1))
    d = (x_adv - x).flatten(1).norm(dim=1)
    assert (d > 0).all() and (d <= 0.5 + 1e-5).all()


def test_apgd_checkpoints_follow_the_paper():
    # p = 0, .22, .41 (=.22+max(.22-.03,.06)), .57, .70, .80, .87, .93, .99
    assert checkpoints(100) == [0, 22, 41, 57, 70, 80, 87, 93, 99]
    w = checkpoints(1000)
    gaps = [b - a for a, b in zip(w, w[1:])]
    assert gaps[0] == 220 and gaps[1] == 190 and min(gaps) >= 60 - 1


def test_apgd_first_step_is_two_eps_and_halves_when_stalled():
    """On a model whose loss never rises the step must halve at every checkpoint."""
    apgd = advx.create("attack", "apgd", eps=0.1, steps=100, random_start=False)
    seen = []

    class Flat(nn.Module):
        def forward(self, x):
            seen.append(x.detach().clone())
            return torch.stack([x.flatten(1).sum(1) * 0 + 1, x.flatten(1).sum(1) * 1e-9], 1)

    x = torch.full((1, 1, 2, 2), 0.5)
    apgd(Flat(), x, torch.tensor([0]))
    first = (seen[1] - seen[0]).abs().max().item()
    assert first == pytest.approx(0.1, abs=1e-6)  # 2·eps step, clipped to the eps-ball


def test_targeted_dlr_sign():
    logits = torch.tensor([[3.0, 1.0, 0.5, 0.2]], requires_grad=True)
    loss = dlr_targeted_loss(logits, torch.tensor([0]), torch.tensor([1]))
    (g,) = torch.autograd.grad(loss.sum(), logits)
    assert g[0, 1] > 0 and g[0, 0] < 0  # maximising raises the target and lowers the true class


def test_loss_in_fp32_under_bf16_autocast(digits):
    model, x, y = digits
    with torch.autocast("cpu", dtype=torch.bfloat16):
        x_adv = advx.create("attack", "pgd", eps=0.1, steps=3)(model, x[:16], y[:16])
    assert x_adv.dtype == torch.float32 and torch.isfinite(x_adv).all()


def test_targeted_call_on_untargeted_attack_is_refused(digits):
    model, x, y = digits
    with pytest.raises(ValueError, match="no targeted variant"):
        advx.create("attack", "deepfool")(model, x[:2], y[:2], target=y[:2])


def test_bad_parameters_are_rejected_with_the_valid_fields():
    from advx.errors import ComponentParameterError

    with pytest.raises(ComponentParameterError, match="steps: int"):
        advx.create("attack", "pgd", stpes=3)
    with pytest.raises(ComponentParameterError):
        advx.create("attack", "pgd", eps=-1)
    assert advx.create("attack", "pgd", eps="8/255").eps == pytest.approx(8 / 255)
    assert math.isclose(advx.create("attack", "apgd", eps="16/255").eps, 16 / 255)


@pytest.mark.parametrize("name,params,passes", [
    ("fgsm", {"eps": 0.1}, (1, 1)),
    ("pgd", {"eps": 0.1, "steps": 7}, (7, 7)),
    ("apgd", {"eps": 0.1, "steps": 7}, (8, 7)),  # the last point is evaluated, never differentiated
    ("apgd", {"eps": 0.1, "steps": 7, "eot": 3}, (24, 21)),
])
def test_gradient_attacks_run_exactly_their_passes(digits, name, params, passes):
    model, x, y = digits
    counted = CountingModel(model)
    advx.create("attack", name, **params)(counted, x[:32], y[:32], generator=torch.Generator().manual_seed(0))
    assert (counted.forwards, counted.backwards) == passes
