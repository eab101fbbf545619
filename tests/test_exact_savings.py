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
