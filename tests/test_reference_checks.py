"""The reference AutoAttack's own checks, in advx: outputs that are probabilities, outputs that
change between identical calls, and Square breaking what the gradient members left robust. Each
is a warning with its reason, stored in the run and listed by `advx audit` (as a note, like the
reference's warnings)."""

import json

import torch
import torch.nn.functional as F
from click.testing import CliRunner
from torch import nn

import advx
from advx.cli import cli
from advx.evaluation.audit import NOTE, OK, audit
from advx.testing import digits_model

AA = {"name": "autoattack", "steps": 10, "queries": 300, "targets": 3}


class Softmaxed(nn.Module):
    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return F.softmax(self.net(x), 1)


class DropoutOn(nn.Module):
    """Dropout applied whatever the mode (a layer left in training mode)."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(F.dropout(x, 0.3, training=True))


class NoGradient(nn.Module):
    """The network on quantised pixels, with the quantisation's zero gradient: masking that
    gradient attacks cannot see past and Square can."""

    def __init__(self, net):
        super().__init__()
        self.net = net

    def forward(self, x):
        return self.net(torch.round(x * 2) / 2)


def _data(n=60):
    model, data = digits_model(epochs=5)
    return model, (data.x_test[:n].float(), data.y_test[:n])


def _checks(results):
    return next(i for i in audit(results) if i.name == "AutoAttack's checks")


def test_probability_outputs_are_warned_stored_and_audited(tmp_path):
    model, xy = _data()
    r = advx.evaluate(Softmaxed(model), xy, attack=AA, eps=0.1, out=tmp_path / "p.h5")
    assert any("the outputs are probabilities" in w and "return the logits" in w for w in r.warnings), r.warnings
    assert any("the outputs are probabilities" in w for w in advx.open_run(tmp_path / "p.h5").warnings)  # stored
    i = _checks(r)
    assert i.verdict == NOTE and "outputs are probabilities" in i.detail and "base/none" in i.cells
    plain = advx.evaluate(model, xy, attack=AA, eps=0.1, out=tmp_path / "l.h5")
    assert _checks(plain).verdict == OK and not any("probabilities" in w for w in plain.warnings)


def test_outputs_that_change_between_identical_calls_are_warned_and_audited(tmp_path):
    model, xy = _data()
    r = advx.evaluate(DropoutOn(model), xy, attack=AA, eps=0.1, out=tmp_path / "d.h5")
    assert any("outputs change between two identical calls" in w and "dropout" in w for w in r.warnings), r.warnings
    assert "outputs change between two identical calls" in _checks(r).detail
    res = CliRunner().invoke(cli, ["audit", str(tmp_path / "d.h5"), "--json"])
    found = {i["name"]: i for i in json.loads(res.stdout)}
    assert found["AutoAttack's checks"]["verdict"] == NOTE
    assert found["randomized without EOT"]["verdict"] == "FAIL"  # and nothing attacked it with EOT


def test_square_breaking_what_the_gradient_members_left_is_warned_and_audited(tmp_path):
    model, xy = _data()
    r = advx.evaluate(NoGradient(model), xy, attack=AA, eps=0.3, out=tmp_path / "s.h5")
    cell = next(c for c in r.cells if c.cell.attack != "clean")
    members = json.loads(cell.info["members"]) if isinstance(cell.info["members"], str) else list(cell.info["members"])
    broken_by_square = int((cell.arrays["broken_by"] == members.index("square")).sum())
    assert broken_by_square > 0  # the masking is real: the gradient members missed these
    assert any(f"member square broke {broken_by_square} samples" in w for w in r.warnings), r.warnings
    i = _checks(r)
    assert i.verdict == NOTE and "square broke" in i.detail
