"""Threat models beside oblivious and adaptive (transfer, black-box), the per-sample worst case
that heads every report, and the checks that flag a weak or masked evaluation."""

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
from advx.cli import cli
from advx.config import load_config
from advx.data.bundle import as_float
from advx.defense import build_defended
from advx.evaluation.cells import Cell
from advx.evaluation.plan import PlannedCell, PlannedDefense
from advx.evaluation.report import all_tables
from advx.evaluation.results import CellResult, RunResults
from advx.evaluation.sanity import SanityLog
from advx.protocols import InputTransformDefense
from advx.registry import Registry, hookimpl, make_plugin_manager

NOAUTO = torch.autocast("cpu", enabled=False)


def config(**evaluate):
    return {
        "experiment": {"name": "tm", "seed": 0},
        "data": {"name": "digits", "test_limit": 80},
        "model": {"name": "digits-cnn", "train": {"epochs": 3, "batch_size": 64, "lr": 2e-3}},
        "train": [{"label": "ft", "init": "base", "epochs": 1}],
        "defense": [{"label": "guo", "chain": [{"name": "crop-rescale", "min_scale": 0.75, "max_scale": 1.0}],
                     "repeats": 2}],
        "attack": [{"name": "fgsm", "eps": 0.1, "label": "FGSM"},
                   {"name": "square", "eps": 0.1, "queries": 20, "label": "Square"}],
        "evaluate": {"chunk_size": 50, "batch_size": 64, "save_adversarials": True, "randomized_attack": "none",
                     **evaluate},
    }


def cells_of(out):
    with h5py.File(out, "r") as f:
        return {tuple(json.loads(g.attrs["spec"]).values()): {k: g[k][()] for k in g} | dict(g.attrs)
                for g in f["cells"].values()}, len(f["adversarials"]) if "adversarials" in f else 0


def test_transfer_crafts_once_on_the_source_and_evaluates_every_model_and_defence(tmp_path):
    cfg = config(modes=["transfer"], transfer_from="base", metrics=["worst-case"])
    cfg["attack"].append({"name": "autoattack", "eps": 0.1, "steps": 3, "targets": 2, "queries": 10, "label": "AA"})
    res = advx.load_experiment(cfg).run(tmp_path / "r.h5")
    cells, crafted = cells_of(tmp_path / "r.h5")
    assert crafted == 3  # one adversarial set per attack, all on 'base'
    for attack in ("FGSM", "Square", "AA"):
        ref = cells[("base", "none", attack, "transfer")]["x_adv"]
        for t in ("base", "ft"):
            for d in ("none", "guo"):
                assert np.array_equal(cells[(t, d, attack, "transfer")]["x_adv"], ref)
    # the numbers are the target model's on the source's adversarials
    ft, data = res.context["models"]["ft"], res.context["data"]
    cell = cells[("ft", "none", "FGSM", "transfer")]
    with torch.no_grad():
        pred = ft(torch.from_numpy(cell["x_adv"])).argmax(1).numpy()
    assert np.array_equal(pred, cell["prediction"])
    fgsm = cells[("base", "none", "FGSM", "transfer")]["x_adv"]
    base, x = res.context["models"]["base"], as_float(data.x_test)
    direct = advx.create("attack", "fgsm", eps=0.1)(base, x, data.y_test)
    with torch.no_grad():  # the source gets these wrong on clean input: not attacked, they keep x
        wrong = base(x).argmax(1) != data.y_test
    assert np.allclose(fgsm, torch.where(wrong.view(-1, 1, 1, 1), x, direct).numpy(), atol=1e-6)
    # the ensemble's per-sample record is stored with the names of its members, and tabulated
    aa = cells[("ft", "guo", "AA", "transfer")]
    assert json.loads(aa["members"]) == ["apgd-ce", "apgd-t", "fab-t", "square"]
    codes = aa["broken_by"]
    assert set(np.unique(codes)) <= {-2, -1, 0, 1, 2, 3} and (codes >= 0).any()
    table = next(t for t in all_tables(res) if t.title.startswith("ensemble: samples broken by each member"))
    row = next(r for r in table.rows if r[:4] == ["ft", "guo", "AA", "transfer"])
    assert row[4:] == [int((codes == -2).sum()), *(int((codes == k).sum()) for k in range(4)), int((codes == -1).sum())]


def test_black_box_cells_are_gradient_free_attacks_only_and_never_backpropagate(tmp_path):
    advx.load_experiment(config(modes=["black-box"])).run(tmp_path / "r.h5")
    cells, _ = cells_of(tmp_path / "r.h5")
    attacked = {k for k in cells if k[3] != "clean"}
    assert attacked == {(t, d, "Square", "black-box") for t in ("base", "ft") for d in ("none", "guo")}
    assert all(cells[k]["backwards"] == 0 and cells[k]["forwards"] > 0 for k in attacked)


def test_worst_case_is_the_per_sample_and_over_every_cell_and_heads_the_report(tmp_path):
    res = advx.load_experiment(config(modes=["oblivious", "adaptive", "black-box"])).run(tmp_path / "r.h5")
    for t in ("base", "ft"):
        for d in ("none", "guo"):
            w = res.worst_case(t, d)
            cells = [c for c in res.cells if (c.cell.train, c.cell.defense) == (t, d)]
            assert {c.cell.mode for c in w.cells} == {c.cell.mode for c in cells}
            expected = np.logical_and.reduce([c.arrays["correct"].astype(bool) for c in cells])
            assert np.array_equal(w.correct, expected)
            assert w.accuracy == pytest.approx(expected.mean() * 100)
            assert w.accuracy <= min(c.accuracy for c in cells)
    assert set(res.worst_case("base", "guo").modes) == {"oblivious", "adaptive", "black-box"}
    head = all_tables(res)[0]
    assert head.title.startswith("robust accuracy (%) — per-sample worst case")
    row = next(r for r in head.rows if r[:2] == ["base", "guo"])
    assert row[3] == round(res.worst_case("base", "guo").accuracy, 2)


def test_worst_case_never_mixes_budgets(tmp_path):
    """A sweep over eps and an unbounded DeepFool in one run: each budget gets its own worst case
    (a sample broken at eps 0.3 says nothing about eps 0.05), named in the headline table."""
    cfg = config(modes=["oblivious"])
    cfg["attack"] = [{"name": "fgsm", "label": "FGSM", "sweep": {"eps": [0.05, 0.3]}},
                     {"name": "pgd", "eps": 0.05, "steps": 3, "label": "PGD"},
                     {"name": "deepfool", "steps": 3, "label": "DeepFool"}]
    res = advx.load_experiment(cfg).run(tmp_path / "r.h5")
    assert res.budgets() == ["linf 0.05", "linf 0.3", "unbounded"]
    with pytest.raises(ValueError, match="several budgets"):
        res.worst_case("base", "none")
    small = res.worst_case("base", "none", "linf 0.05")
    assert sorted(small.attacks) == ["FGSM[eps=0.05]", "PGD"]
    expected = np.logical_and.reduce([res.get("base", "none", a).arrays["correct"].astype(bool)
                                      for a in ("clean", "FGSM[eps=0.05]", "PGD")])
    assert np.array_equal(small.correct, expected)
    assert res.worst_case("base", "none", "unbounded").attacks == ["DeepFool"]
    head = all_tables(res)[0]
    assert head.columns[:4] == ["train", "defense", "budget", "clean"]
    rows = {(r[0], r[1], r[2]): r for r in head.rows}
    assert rows["base", "none", "linf 0.05"][4] == round(small.accuracy, 2)
    assert {b for _, _, b in rows} == {"linf 0.05", "linf 0.3", "unbounded"}


def test_budget_names_read_as_papers_write_them():
    from advx.evaluation.results import attack_budget

    assert attack_budget(advx.create("attack", "apgd", eps=8 / 255)) == "linf 8/255"
    assert attack_budget(advx.create("attack", "pgd", eps=0.3)) == "linf 0.3"
    assert attack_budget(advx.create("attack", "pgd", eps=0.2)) == "linf 0.2"  # = 51/255, written as set
    assert attack_budget(advx.create("attack", "square", norm="l2", eps=0.5)) == "l2 0.5"
    assert attack_budget(advx.create("attack", "cw")) == "unbounded"


@attrs.frozen
class RoundUndeclared(InputTransformDefense):
    """Binarises the input and does not say so: every input gradient is zero (gradient masking)."""

    name: ClassVar[str] = "round-undeclared"

    def transform(self, x, model, generator, context):
        return torch.round(x)


@attrs.frozen
class RoundDeclared(RoundUndeclared):
    """The same step declared non-differentiable, so adaptive attacks use BPDA through it."""

    name: ClassVar[str] = "round-declared"
    differentiable: ClassVar[bool] = False


def registry_with_rounding():
    pm = make_plugin_manager()
    mod = types.ModuleType("rounding_plugin")
    mod.advx_register_inference_defenses = hookimpl(lambda: [RoundUndeclared, RoundDeclared])
    mod.advx_register_inference_defenses.__name__ = "advx_register_inference_defenses"
    pm.register(mod)
    return Registry(pm)


def test_masked_gradients_are_exposed_by_the_gradient_free_attack(tmp_path):
    cfg = config(modes=["adaptive", "black-box"])
    cfg["train"] = []
    cfg["data"]["test_limit"] = 120
    cfg["defense"] = [{"label": "round", "chain": [{"name": "round-undeclared"}]}]
    cfg["attack"] = [{"name": "pgd", "eps": 0.3, "steps": 10, "label": "PGD"},
                     {"name": "square", "eps": 0.3, "queries": 300, "label": "Square"}]
    res = advx.Experiment(load_config(cfg), registry_with_rounding()).run(tmp_path / "r.h5")
    pgd, square = res.get("base", "round", "PGD", "adaptive"), res.get("base", "round", "Square", "black-box")
    assert square.accuracy < pgd.accuracy - 10, (square.accuracy, pgd.accuracy)
    assert any("all-zero input gradient" in w for w in res.warnings)
    assert any("gradient masking" in w and "[base/round] gradient-free Square" in w for w in res.warnings)
    assert res.worst_case("base", "round").accuracy <= square.accuracy


def test_the_masking_check_differentiates_the_pipeline_as_the_adaptive_attack_does():
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(64, 10)).eval()
    x, y = torch.rand(16, 1, 8, 8), torch.randint(0, 10, (16,))
    for defence, flagged in ((RoundUndeclared(), True), (RoundDeclared(), False)):
        pipeline = build_defended(model, [defence])
        log = SanityLog()
        planned = PlannedCell(Cell("base", "round", "clean", "clean"), PlannedDefense("round", (defence,)))
        log.check_cell(planned, pipeline, x, y, NOAUTO)
        assert any("all-zero input gradient" in m for m in log.messages) == flagged, log.messages
        assert not pipeline.attacking  # switched back after the check


def fake_results(cells):
    return RunResults({}, [CellResult(Cell(*spec), {"correct": np.array(c, dtype=bool), "index": np.arange(len(c))},
                                      {"status": "done"}) for spec, c in cells], {}, {}, [])


def test_adaptive_above_oblivious_is_named_with_its_significance():
    n = 200
    obl = [1] * 100 + [0] * 100
    above_noise = [1] * 100 + [1] * 30 + [0] * 70        # 30 samples better, none worse: z = 5.5
    within_noise = [1] * 99 + [0] + [1] * 2 + [0] * 98   # 2 better, 1 worse: z = 0.6
    res = fake_results([(("m", "d1", "PGD", "adaptive"), above_noise), (("m", "d1", "PGD", "oblivious"), obl),
                        (("m", "d2", "PGD", "adaptive"), within_noise), (("m", "d2", "PGD", "oblivious"), obl),
                        (("m", "d3", "PGD", "adaptive"), [0] * n), (("m", "d3", "PGD", "oblivious"), obl)])
    log = SanityLog()
    log.check_threat_models(res, frozenset())
    assert len(log.messages) == 2
    assert ("[m/d1] PGD: adaptive leaves 65.0% robust, above oblivious 50.0% on the same 200 samples (beyond "
            "sampling noise") in log.messages[0]
    assert "[m/d2]" in log.messages[1] and "within sampling noise" in log.messages[1]


@pytest.mark.parametrize("evaluate,attack,needle", [
    ({"modes": ["transfer"], "transfer_from": "nobody"}, {}, "'nobody' names no trained model; trained models: base"),
    ({"modes": ["transfer"]}, {}, "the 'transfer' mode needs the trained model to craft on"),
    ({"modes": ["oblivious"], "transfer_from": "base"}, {}, "'transfer' is not in evaluate.modes"),
    ({"modes": ["black-box"]}, {}, "'black-box' runs gradient-free attacks only"),
    ({"modes": []}, {}, "evaluate.modes: empty"),
    ({}, {"name": "square", "queries": 0}, "queries"),
    ({}, {"name": "autoattack", "version": "nonsense"}, "version"),
])
def test_bad_threat_model_settings_exit_2_with_one_line(tmp_path, evaluate, attack, needle):
    lines = ['[data]\nname = "digits"\ntest_limit = 20\n[model]\nname = "digits-cnn"\n[model.train]\nepochs = 1\n']
    atk = {"name": "fgsm", "eps": 0.1, **attack}
    lines.append("[[attack]]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in atk.items()))
    if evaluate:
        lines.append("[evaluate]\n" + "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in evaluate.items()))
    path = tmp_path / "x.toml"
    path.write_text("".join(lines))
    res = CliRunner().invoke(cli, ["run", str(path), "--out", str(tmp_path / "r.h5")])
    assert res.exit_code == 2, res.output
    assert needle in res.output and "Traceback" not in res.output
    assert len(res.output.strip().splitlines()) == 1, res.output
    assert not (tmp_path / "r.h5").exists()  # refused before the run file is created


def planned_cells(raw):
    from advx.evaluation.plan import make_plan

    exp = advx.load_experiment(raw)
    return make_plan(exp.config, exp.components).cells


def test_grid_rules_for_gradient_free_attacks_and_attack_defence_filters():
    planned = planned_cells(config(modes=["oblivious", "adaptive", "black-box"]) | {
        "attack": [{"name": "pgd", "label": "PGD"},
                   {"name": "square", "label": "Square", "defenses": ["none"]},
                   {"name": "square", "label": "Square-guo", "defenses": ["guo"]}]})
    cells = {(p.cell.train, p.cell.defense, p.cell.attack, p.cell.mode) for p in planned if not p.clean}
    base = {c for c in cells if c[0] == "base"}
    stands = {(p.cell.defense, p.cell.attack, p.cell.mode): p.stands_for for p in planned if p.cell.train == "base"}
    assert stands["none", "PGD", "oblivious"] == ("oblivious", "adaptive")  # undefended, the two coincide
    assert stands["none", "Square", "oblivious"] == ("oblivious", "black-box")
    assert stands["guo", "PGD", "adaptive"] == ("adaptive",)
    assert {type(p.threat).__name__ for p in planned if not p.clean} == {"Oblivious", "Adaptive", "BlackBox"}
    assert base == {("base", "none", "PGD", "oblivious"), ("base", "guo", "PGD", "oblivious"),
                    ("base", "guo", "PGD", "adaptive"),
                    ("base", "none", "Square", "oblivious"),  # black-box on 'none' is the oblivious cell
                    ("base", "guo", "Square-guo", "oblivious"), ("base", "guo", "Square-guo", "black-box")}


def test_an_attack_aimed_at_an_unknown_defence_is_refused_with_its_path():
    from advx.errors import ConfigError

    with pytest.raises(ConfigError, match=r"attack\[0\].defenses: 'gou' is no defence label; labels: none, guo"):
        load_config(config() | {"attack": [{"name": "fgsm", "defenses": ["gou"]}]})
    with pytest.raises(ConfigError, match="non-empty list"):
        load_config(config() | {"attack": [{"name": "fgsm", "defenses": "guo"}]})


def test_a_defence_label_can_have_per_model_variants():
    """Paper 004 tunes MI-OL's λ per model (0.5 mixup, 0.6 IAT): one label, disjoint ``trains``;
    each trained model gets its own variant and no model gets a pipeline not meant for it."""
    from advx.config import parse_config
    from advx.errors import ConfigError
    from advx.evaluation.cells import find_defense

    raw = config(modes=["oblivious"])
    raw["defense"] = [{"label": "MI", "chain": [{"name": "mixup-inference", "lam": 0.5}], "trains": ["base"]},
                      {"label": "MI", "chain": [{"name": "mixup-inference", "lam": 0.6}], "trains": ["ft"]},
                      {"label": "guo", "chain": [{"name": "crop-rescale"}], "trains": ["ft"]}]
    cfg = parse_config(raw)
    assert find_defense(cfg, "MI", "base").chain[0].params["lam"] == 0.5
    assert find_defense(cfg, "MI", "ft").chain[0].params["lam"] == 0.6
    pairs = {(p.cell.train, p.cell.defense) for p in planned_cells(raw)}
    assert pairs == {("base", "none"), ("base", "MI"), ("ft", "none"), ("ft", "MI"), ("ft", "guo")}
    exp = advx.load_experiment(raw)
    assert {k[0] for k in exp.components["defenses"]} == {"MI", "guo"} and len(exp.components["defenses"]) == 3
    raw["defense"][1]["trains"] = ["base", "ft"]
    with pytest.raises(ConfigError, match="defense\\[1\\].label: 'MI' is used by another defence"):
        parse_config(raw)
    raw["defense"][1]["trains"] = ["nobody"]
    with pytest.raises(ConfigError, match="defense\\[1\\].trains: 'nobody' names no trained model"):
        parse_config(raw)
