"""AutoAttack-style sanity checks: randomness, dead gradients, stronger attacks that do worse."""

import types

import torch
from torch import nn

import advx
from advx.config import parse_config
from advx.defense import build_defended
from advx.evaluation.cells import Cell
from advx.evaluation.plan import PlannedCell, PlannedDefense
from advx.evaluation.sanity import SanityLog

NOAUTO = torch.autocast("cpu", enabled=False)


def clean_cell(defense, *chain):
    """The planned clean cell of pipeline ``defense`` with its chain (what the runner checks)."""
    return PlannedCell(Cell("base", defense, "clean", "clean"), PlannedDefense(defense, tuple(chain)))


class Constant(nn.Module):
    def forward(self, x):
        return torch.zeros(len(x), 3) + 0 * x.flatten(1)[:, :3]


def test_randomized_defence_without_eot_is_flagged():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    crop = advx.create("inference_defense", "crop-rescale", min_scale=0.5)
    d = build_defended(model, [crop], repeats=1)
    log = SanityLog()
    x, y = torch.rand(8, 1, 4, 4), torch.zeros(8, dtype=torch.long)
    facts = log.check_cell(clean_cell("guo", crop), d, x, y, NOAUTO)
    assert any("randomized defence" in m for m in log.messages)
    assert set(facts) >= {"unstable", "zero_gradient"}
    quiet = SanityLog()
    quiet.check_cell(clean_cell("guo", crop), d, x, y, NOAUTO, eot=4)  # some attack averages 4 draws
    assert not any("randomized" in m for m in quiet.messages)


def test_zero_gradients_are_flagged():
    log = SanityLog()
    facts = log.check_cell(clean_cell("none"), Constant(), torch.rand(8, 1, 4, 4), torch.zeros(8, dtype=torch.long),
                           NOAUTO)
    assert any("all-zero input gradient" in m for m in log.messages)
    assert facts["zero_gradient"] == 1.0 and facts["unstable"] is False


def test_counteract_is_flagged_as_test_time_optimisation():
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3))
    counteract = advx.create("inference_defense", "counteract", n=2)
    d = build_defended(model, [counteract])
    log = SanityLog()
    log.check_cell(clean_cell("ours", counteract), d, torch.rand(8, 1, 4, 4), torch.zeros(8, dtype=torch.long),
                   NOAUTO, eot=4)
    assert any("optimises its input at inference time" in m for m in log.messages)


def test_weaker_with_larger_eps_is_flagged_as_gradient_masking():
    cfg = parse_config({"model": {"name": "m"}, "attack": [{"name": "fgsm", "label": "F", "sweep": {"eps": [0.1, 0.2, 0.3]}}]})
    acc = {"F[eps=0.1]": 40.0, "F[eps=0.2]": 70.0, "F[eps=0.3]": 20.0}
    results = types.SimpleNamespace(
        labels=lambda field: ["base"] if field == "train" else ["none"], modes=lambda: ["oblivious"],
        test={"label": list(range(500))},
        get=lambda t, d, a, m: types.SimpleNamespace(accuracy=acc[a]))
    log = SanityLog()
    log.check_monotone(results, cfg)
    assert len(log.messages) == 1 and "rises from 40.0% to 70.0%" in log.messages[0]
