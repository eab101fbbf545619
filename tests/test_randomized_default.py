"""Randomized pipelines get AutoAttack's rand version by default (issue #36): APGD-CE and APGD-DLR
with EOT, adaptive mode only, on the randomized pipelines only, and part of the run's identity."""

import advx

CONFIG = {
    "experiment": {"name": "rand", "seed": 0},
    "data": {"name": "digits", "test_limit": 24},
    "model": {"name": "digits-cnn", "train": {"epochs": 2, "batch_size": 64, "lr": 2e-3}},
    "defense": [{"label": "guo", "chain": [{"name": "crop-rescale", "min_scale": 0.75, "max_scale": 1.0}],
                 "repeats": 2},
                {"label": "counter", "chain": [{"name": "counteract", "n": 9}]}],
    "attack": [{"name": "fgsm", "eps": 0.1, "label": "FGSM"}],
    "evaluate": {"modes": ["oblivious", "adaptive"], "eot": 2, "randomized_eot": 2, "randomized_steps": 3,
                 "metrics": ["accuracy", "worst-case"]},
}


def test_the_rand_version_attacks_each_randomized_pipeline_adaptively(tmp_path):
    exp = advx.load_experiment(CONFIG)
    (spec,) = exp.injected
    assert spec.label == "AutoAttack-rand" and spec.modes == ("adaptive",)
    assert spec.component.params == {"version": "rand", "eps": 0.1, "norm": "linf", "eot": 2, "steps": 3}
    randomized = set(spec.defenses)
    assert "guo" in randomized  # crop-rescale draws a window per image
    res = exp.run(tmp_path / "r.h5")
    cells = {(c.cell.defense, c.cell.mode) for c in res.cells if c.cell.attack == "AutoAttack-rand"}
    assert cells == {(d, "adaptive") for d in randomized}
    for d in randomized:  # the worst case counts it: never above any single cell of the pipeline
        worst = res.worst_case("base", d)
        assert worst.accuracy <= res.get("base", d, "AutoAttack-rand", "adaptive").accuracy + 1e-9


def test_one_cell_per_budget_in_every_norm_including_l1():
    attacks = [{"name": "fgsm", "eps": 0.1, "label": "FGSM"}, {"name": "apgd", "norm": "l1", "eps": 2.0, "label": "A1"},
               {"name": "deepfool", "label": "DF"}]  # minimal-norm: no budget to attack at
    specs = advx.load_experiment({**CONFIG, "attack": attacks}).injected
    assert [(s.label, s.component.params["norm"], s.component.params["eps"]) for s in specs] == [
        ("AutoAttack-rand (linf 0.1)", "linf", 0.1), ("AutoAttack-rand (l1 2.0)", "l1", 2.0)]


def test_none_leaves_it_out_and_the_two_runs_never_share_a_file():
    off = {**CONFIG, "evaluate": {**CONFIG["evaluate"], "randomized_attack": "none"}}
    on, without = advx.load_experiment(CONFIG), advx.load_experiment(off)
    assert without.injected == () and [a.label for a in without.config.attacks] == ["FGSM"]
    assert on.config_hash() != without.config_hash()


def test_no_randomized_pipeline_or_no_adaptive_mode_adds_nothing():
    oblivious = {**CONFIG, "evaluate": {**CONFIG["evaluate"], "modes": ["oblivious"]}}
    assert advx.load_experiment(oblivious).injected == ()
    deterministic = {**CONFIG, "defense": [{"label": "dc", "chain": [{"name": "distribution-classifier"}]}]}
    assert advx.load_experiment(deterministic).injected == ()
