"""Threat models as objects: each cell stores its own attack's result (a failed adaptive attack is
a finding), every stored point answers to its budget (minimal-norm attacks included), a defence
that breaks the gradient is named in one line, and a plugin can add a threat model."""

import json
import types
from typing import ClassVar

import attrs
import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import advx
from advx.api import AttackBase, InputTransformDefense
from advx.cli import cli
from advx.config import load_config
from advx.defense import DefendedClassifier
from advx.errors import DefenseError
from advx.evaluation.audit import audit
from advx.evaluation.threat_models import ThreatModel
from advx.registry import Registry, hookimpl, make_plugin_manager
from advx.testing import check_defense


@attrs.frozen
class TimidFGSM(AttackBase):
    """FGSM that does nothing when it is handed a defended pipeline: a deliberately broken
    adaptive attack (its oblivious cells are real FGSM)."""

    name: ClassVar[str] = "timid-fgsm"
    eps: float = 0.1

    def perturb(self, model, x, y, *, target, generator, eps):
        if any(isinstance(m, DefendedClassifier) and m.transforms for m in model.modules()):
            return x.clone()
        return advx.create("attack", "fgsm", eps=self.eps)(model, x, y)


@attrs.frozen
class Escaping(AttackBase):
    """Declares itself minimal-norm with an eps of 0.1, then returns points at linf 0.3."""

    name: ClassVar[str] = "escaping"
    minimal: ClassVar[bool] = True
    eps: float = 0.1

    def perturb(self, model, x, y, *, target, generator, eps):
        return advx.create("attack", "fgsm", eps=0.3)(model, x, y)


@attrs.frozen
class Identity(InputTransformDefense):
    """A deterministic, differentiable no-op defence: adaptive and oblivious attacks coincide."""

    name: ClassVar[str] = "identity"

    def transform(self, x, model, generator, context):
        return x * 1.0


@attrs.frozen
class NoGrad(InputTransformDefense):
    """Quantises under torch.no_grad and does not declare it: the graph is broken."""

    name: ClassVar[str] = "nograd-quantise"

    def transform(self, x, model, generator, context):
        with torch.no_grad():
            return (x * 16).round() / 16


@attrs.frozen
class Flat(InputTransformDefense):
    """Differentiable, but every input gradient is zero: the output ignores the input."""

    name: ClassVar[str] = "flat"

    def transform(self, x, model, generator, context):
        return x * 0.0 + 0.5


@attrs.frozen
class NoisyTransfer(ThreatModel):
    """A third party's threat model: craft on the undefended model from a start shifted by a
    fixed pattern (a test of the plugin surface, not a recommended protocol)."""

    name: ClassVar[str] = "oblivious-shifted"
    crafts_on: ClassVar[str] = "the undefended trained model, from a shifted image"
    stronger_than: ClassVar[tuple[str, ...]] = ()

    def adversarials(self, runner, cell, s, e, clean_ok):
        x_adv, logs, fw, bw = runner.cached(cell.cell.train, cell.cell.attack, s, e)
        return x_adv, logs, fw, bw


def registry(*, attacks=(), defenses=(), threat_models=()):
    pm = make_plugin_manager()
    mod = types.ModuleType("test_threat_plugin")
    for hook, classes in (("advx_register_attacks", attacks), ("advx_register_inference_defenses", defenses),
                          ("advx_register_threat_models", threat_models)):
        if classes:
            fn = hookimpl(lambda classes=classes: list(classes))
            fn.__name__ = hook
            setattr(mod, hook, fn)
    pm.register(mod)
    return Registry(pm)


def config(**evaluate):
    return {
        "experiment": {"name": "tmo", "seed": 0},
        "data": {"name": "digits", "test_limit": 60},
        "model": {"name": "digits-cnn", "train": {"epochs": 3, "batch_size": 64, "lr": 2e-3}},
        "defense": [{"label": "id", "chain": [{"name": "identity"}]}],
        "attack": [{"name": "timid-fgsm", "eps": 0.1, "label": "Timid"}],
        "evaluate": {"chunk_size": 64, "batch_size": 64, "randomized_attack": "none",
                     "modes": ["oblivious", "adaptive"], **evaluate},
    }


def test_a_failed_adaptive_attack_shows_its_own_number_warns_and_fails_the_audit(tmp_path):
    reg = registry(attacks=[TimidFGSM], defenses=[Identity])
    res = advx.Experiment(load_config(config()), reg).run(tmp_path / "r.h5")
    ad, ob = res.get("base", "id", "Timid", "adaptive"), res.get("base", "id", "Timid", "oblivious")
    clean = res.get("base", "id", "clean")
    assert ad.accuracy == pytest.approx(clean.accuracy)  # its own (nil) result, not the oblivious points
    assert ob.accuracy < ad.accuracy - 10
    assert "from_transfer" not in ad.arrays
    warning = next(w for w in res.warnings if "[base/id] Timid: adaptive leaves" in w)
    assert f"{ad.accuracy:.1f}%" in warning and f"oblivious {ob.accuracy:.1f}%" in warning
    verdicts = {i.name: i for i in audit(advx.open_run(tmp_path / "r.h5"))}
    assert verdicts["transfer beats adaptive"].verdict == "FAIL"
    assert "base/id/Timid (adaptive)" in verdicts["transfer beats adaptive"].cells
    # the table of adaptive attacks shows the adaptive cell's own number
    table = res.accuracy_table("adaptive")
    row = next(r for r in table.rows if r[:2] == ["base", "id"])
    assert row[3] == round(ad.accuracy, 2)


def test_a_minimal_norm_attack_that_escapes_its_budget_counts_nothing_there(tmp_path):
    cfg = config(modes=["oblivious"])
    cfg["attack"] = [{"name": "escaping", "label": "Escape"}]
    res = advx.Experiment(load_config(cfg), registry(attacks=[Escaping], defenses=[Identity])).run(tmp_path / "r.h5")
    cell, clean = res.get("base", "none", "Escape"), res.get("base", "none", "clean")
    assert cell.info["budget"] == "linf 0.1"
    assert cell.accuracy == pytest.approx(clean.accuracy)  # every point was at linf 0.3: no success at 0.1
    assert cell.arrays["over_budget"][clean.arrays["correct"].astype(bool)].all()
    assert (cell.arrays["linf"] <= 0.1 + 1e-5).all()  # what is stored answers to the budget
    verdicts = {i.name: i for i in audit(res)}
    assert verdicts["unconstrained"].verdict == "ok" and "base/none/Escape (oblivious)" in verdicts["unconstrained"].cells
    assert "points the attack found lay beyond its budget linf 0.1" in verdicts["unconstrained"].detail
    # a stored point beyond its budget (a tampered or foreign file) is named by the audit
    with h5py.File(tmp_path / "r.h5", "r+") as f:
        group = next(g for g in f["cells"].values() if json.loads(g.attrs["spec"])["attack"] == "Escape")
        group["linf"][0] = 0.3
    verdicts = {i.name: i for i in audit(advx.open_run(tmp_path / "r.h5"))}
    assert verdicts["unconstrained"].verdict == "FAIL"
    assert "1 of 60 stored points beyond its budget linf 0.1" in verdicts["unconstrained"].detail


def test_deepfool_given_a_budget_reports_its_success_within_it(tmp_path):
    cfg = config(modes=["oblivious"])
    cfg["defense"] = []
    cfg["attack"] = [{"name": "deepfool", "norm": "linf", "steps": 10, "label": "DF"},
                     {"name": "deepfool", "norm": "linf", "steps": 10, "budget": "8/255", "label": "DF-8"}]
    res = advx.load_experiment(cfg).run(tmp_path / "r.h5")
    free, bounded = res.get("base", "none", "DF"), res.get("base", "none", "DF-8")
    assert free.info["budget"] == "unbounded" and bounded.info["budget"] == "linf 8/255"
    assert bounded.accuracy > free.accuracy
    broken = ~bounded.arrays["correct"].astype(bool) & res.get("base", "none", "clean").arrays["correct"].astype(bool)
    assert broken.any() and (bounded.arrays["linf"][broken] <= 8 / 255 + 1e-5).all()
    fits = free.arrays["linf"] <= 8 / 255 + 1e-5  # the same points: success within the budget is the same set
    assert np.array_equal(~bounded.arrays["correct"].astype(bool) & broken,
                          ~free.arrays["correct"].astype(bool) & fits & broken)


def test_a_budget_on_an_attack_with_its_own_eps_is_refused(tmp_path):
    cfg = config(modes=["oblivious"])
    cfg["attack"] = [{"name": "fgsm", "eps": 0.1, "budget": 0.2}]
    with pytest.raises(advx.errors.ConfigError, match=r"attack\[0\].budget: only a minimal-norm attack"):
        advx.Experiment(load_config(cfg), registry(defenses=[Identity]))


def test_a_defence_that_breaks_the_graph_exits_2_with_one_line_naming_it(tmp_path, monkeypatch):
    cfg = config()
    cfg["defense"] = [{"label": "q", "chain": [{"name": "nograd-quantise"}]}]
    cfg["attack"] = [{"name": "fgsm", "eps": 0.1}]
    with pytest.raises(DefenseError, match=r"defence 'nograd-quantise' \(.*test_threat_model_objects.py:\d+\) breaks "
                                           r"the gradient .* declare differentiable = False"):
        advx.Experiment(load_config(cfg), registry(defenses=[NoGrad])).run(tmp_path / "r.h5")
    path = tmp_path / "x.toml"
    from advx.toml_text import dumps

    path.write_text(dumps(cfg))
    monkeypatch.setattr("advx.registry.Registry.__init__", _with_plugin(NoGrad))
    out = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "c.h5")])
    assert out.exit_code == 2, out.output
    lines = [line for line in out.output.strip().splitlines() if not line.startswith("warning:")]
    assert len(lines) == 1 and "defence 'nograd-quantise'" in lines[0] and "Traceback" not in out.output


def _with_plugin(*defenses):
    original = Registry.__init__

    def init(self, pm=None):
        if pm is None:
            pm = make_plugin_manager()
            mod = types.ModuleType("cli_test_plugin")
            fn = hookimpl(lambda: list(defenses))
            fn.__name__ = "advx_register_inference_defenses"
            mod.advx_register_inference_defenses = fn
            pm.register(mod)
        original(self, pm)
    return init


def test_check_defense_fails_on_a_broken_graph_and_on_all_zero_gradients():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    x = torch.rand(4, 1, 8, 8)
    check_defense(Identity(), model, x, 10)
    with pytest.raises(AssertionError, match="breaks the input gradient"):
        check_defense(NoGrad(), model, x, 10)
    with pytest.raises(AssertionError, match="all-zero input gradient"):
        check_defense(Flat(), model, x, 10)


def test_a_third_party_threat_model_runs_in_an_experiment(tmp_path):
    reg = registry(defenses=[Identity], threat_models=[NoisyTransfer])
    assert "oblivious-shifted" in reg.names("threat_model")
    cfg = config(modes=["oblivious", "oblivious-shifted"])
    cfg["attack"] = [{"name": "fgsm", "eps": 0.1, "label": "FGSM"}]
    res = advx.Experiment(load_config(cfg), reg).run(tmp_path / "r.h5")
    mine = res.get("base", "id", "FGSM", "oblivious-shifted")
    assert mine is not None and mine.cell.mode == "oblivious-shifted" and mine.finished
    assert mine.info["threat_model"] == "oblivious-shifted"
    assert mine.accuracy == pytest.approx(res.get("base", "id", "FGSM", "oblivious").accuracy)
    assert "oblivious-shifted" in res.worst_case("base", "id").modes


def test_unknown_threat_model_names_what_exists(tmp_path):
    cfg = config(modes=["adaptve"])
    with pytest.raises(advx.errors.UnknownComponentError, match=r"evaluate.modes\[0\].*did you mean 'adaptive'"):
        advx.Experiment(load_config(cfg), registry(attacks=[TimidFGSM], defenses=[Identity]))


def test_threat_models_are_listed_and_described():
    out = CliRunner().invoke(cli, ["list", "threat-model"])
    assert out.exit_code == 0 and all(m in out.output for m in ("oblivious", "adaptive", "transfer", "black-box"))
    out = CliRunner().invoke(cli, ["describe", "threat-model", "adaptive"])
    assert out.exit_code == 0, out.output
    assert "BPDA" in out.output and "EOT" in out.output
