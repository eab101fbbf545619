"""The evaluator checks every attack's output against the threat model it declares (issue #36):
an attack whose points leave its ball or the pixel bounds produces no number."""

from __future__ import annotations

from typing import ClassVar

import attrs
import h5py
import pytest
import torch

import advx
from advx.errors import ThreatModelError
from advx.evaluation.experiment import Experiment
from advx.config import load_config
from advx.evaluation.budget import Budget
from advx.protocols import AttackBase
from advx.registry import Registry, hookimpl, make_plugin_manager


@attrs.frozen
class Outside(AttackBase):
    """Steps 3·eps from the input: a plugin bug the base class does not catch (it only clamps)."""

    name: ClassVar[str] = "outside"
    eps: float = 0.1

    def perturb(self, model, x, y, *, target, generator, eps):
        return x + 3 * eps * torch.where(x > 0.5, -1.0, 1.0)


class _Plugin:
    @hookimpl
    def advx_register_attacks(self):
        return [Outside]


def test_an_attack_outside_its_ball_stores_no_number(tmp_path):
    pm = make_plugin_manager()
    pm.register(_Plugin(), name="outside-plugin")
    cfg = {"experiment": {"name": "tm", "seed": 0}, "data": {"name": "digits", "test_limit": 40},
           "model": {"name": "digits-cnn", "train": {"epochs": 1}},
           "attack": [{"name": "outside", "eps": 0.1, "label": "Outside"}], "evaluate": {"metrics": ["accuracy"]}}
    exp = Experiment(load_config(cfg), Registry(pm))
    with pytest.raises(ThreatModelError, match=r"attack 'Outside': of \d+ samples, \d+ outside its linf ball"):
        exp.run(tmp_path / "r.h5")
    with h5py.File(tmp_path / "r.h5", "r") as f:
        attacked = [k for k in f["cells"] if "Outside" in k]
        assert all(f["cells"][k].attrs.get("n_done", 0) == 0 and "correct" not in f["cells"][k] for k in attacked)


def check_threat_model(attack, label, x, x_adv):
    Budget.of(attack).check(label, attack.bounds, x, x_adv)


def test_the_check_allows_float_slack_and_names_each_problem():
    x = torch.rand(4, 1, 8, 8) * 0.8 + 0.1
    pgd = advx.create("attack", "pgd", eps=0.1)
    check_threat_model(pgd, "PGD", x, x + 0.1 * (1 + 1e-6))  # an eps rounded through float32
    with pytest.raises(ThreatModelError, match="2 with NaN"):
        bad = x.clone()
        bad[:2, 0, 0, 0] = float("nan")
        check_threat_model(pgd, "PGD", x, bad)
    with pytest.raises(ThreatModelError, match=r"1 outside the pixel bounds \[0.0, 1.0\]; 1 outside its linf ball"):
        bad = x.clone()
        bad[0, 0, 0, 0] = 1.05
        check_threat_model(pgd, "PGD", x, bad)
    cw = advx.create("attack", "cw")  # minimal-norm: no ball, bounds only
    check_threat_model(cw, "CW", x, (x + 0.5).clamp(0, 1))


def test_margin_loss_is_positive_exactly_when_misclassified():
    from advx_attacks.ops import attack_loss

    logits = torch.tensor([[3.0, 1.0, 0.0], [0.0, 2.0, 1.0]])
    y = torch.tensor([0, 0])
    loss = attack_loss("margin", logits, y, None)
    assert loss.tolist() == [-2.0, 2.0]
    pgd = advx.create("attack", "pgd", eps=0.1, loss="margin")
    from advx.testing import digits_model

    model, data = digits_model()
    x, yy = data.x_test[:64].float(), data.y_test[:64]
    with torch.no_grad():
        clean = (model(x).argmax(1) == yy).float().mean()
        robust = (model(pgd(model, x, yy, generator=torch.Generator().manual_seed(0))).argmax(1) == yy).float().mean()
    assert robust < clean - 0.2
