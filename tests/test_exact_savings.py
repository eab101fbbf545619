"""The evaluator's side of exact savings (issue #48, item 1): it lets an attack stop on fooled
samples only where the points are scored on the model attacked (advx.api.may_stop_when_fooled);
the attack's side is plugins/attacks/tests/test_exact_savings.py."""

import advx


def test_the_evaluator_stops_early_only_where_points_are_scored_on_the_model_attacked(tmp_path, tiny_config):
    """advx eval's setting (no defence): the undefended cell's APGD spends fewer backward passes.
    With a defence in the run the same cached points are scored on the defended pipeline too: the
    reference's semantics (every sample, every iteration) and the same robust set undefended."""
    tiny_config["attack"] = [{"name": "apgd", "eps": 0.1, "steps": 30, "label": "APGD"}]
    tiny_config["evaluate"]["modes"] = ["oblivious"]
    tiny_config["experiment"]["cache_dir"] = str(tmp_path / "cache")
    defended = advx.load_experiment(tiny_config).run(tmp_path / "d.h5")
    plain_cfg = {**tiny_config, "defense": []}
    plain = advx.load_experiment(plain_cfg).run(tmp_path / "p.h5")
    a, b = plain.get("base", "none", "APGD"), defended.get("base", "none", "APGD")
    assert (a.arrays["correct"] == b.arrays["correct"]).all()
    attacked = int(plain.get("base", "none", "clean").arrays["correct"].sum())
    assert int(b.info["backward_rows"]) == 30 * attacked  # every sample, every step
    assert int(a.info["backward_rows"]) < 0.8 * int(b.info["backward_rows"])


def test_an_adaptive_cell_on_a_deterministic_pipeline_stops_early_and_finds_the_same_samples(tmp_path):
    """A deterministic, differentiable defence (identity): its adaptive APGD cell attacks the
    pipeline it is scored on, so it stops on fooled samples; the oblivious points, reused by that
    defence, run every sample for every step. Both attack the same function with the same
    per-sample streams: the same samples robust."""
    from advx.config import load_config

    from .test_threat_model_objects import Identity, config, registry

    cfg = config(modes=["oblivious", "adaptive"])
    cfg["attack"] = [{"name": "apgd", "eps": 0.1, "steps": 30, "label": "APGD"}]
    cfg["experiment"]["cache_dir"] = str(tmp_path / "cache")
    res = advx.Experiment(load_config(cfg), registry(defenses=[Identity])).run(tmp_path / "r.h5")
    adaptive, oblivious = res.get("base", "id", "APGD", "adaptive"), res.get("base", "none", "APGD", "oblivious")
    attacked = int(res.get("base", "none", "clean").arrays["correct"].sum())
    assert (adaptive.arrays["correct"] == oblivious.arrays["correct"]).all()
    assert int(oblivious.info["backward_rows"]) == 30 * attacked  # reused by a defence: every step
    assert int(adaptive.info["backward_rows"]) < 0.8 * 30 * attacked
