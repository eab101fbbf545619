"""TOML config: parsing, fractions, overrides and path-named errors."""

import pytest

from advx.config import apply_overrides, load_config, parse_config
from advx.errors import ConfigError


def base():
    return {"model": {"name": "digits-cnn", "train": {"epochs": 2}},
            "attack": [{"name": "pgd", "eps": "8/255", "steps": 10}]}


def test_fractions_and_defaults():
    cfg = parse_config({**base(), "evaluate": {"modes": ["oblivious", "adaptive"]}})
    assert cfg.attacks[0].component.params["eps"] == "8/255"  # validated on resolve by the registry
    assert cfg.base_train.epochs == 2 and cfg.data.dataset.name == "digits"
    assert cfg.evaluate.modes == ("oblivious", "adaptive")
    assert parse_config({**base(), "model": {"name": "m", "train": {"lr": "1/1000"}}}).base_train.lr == 0.001


def test_overrides_reach_any_key():
    raw = apply_overrides(base(), ["model.train.epochs=5", "attack.0.steps=3", "experiment.name=\"x\"",
                                   "data.name=fashion-mnist"])
    cfg = parse_config(raw)
    assert cfg.base_train.epochs == 5 and cfg.attacks[0].component.params["steps"] == 3
    assert cfg.experiment.name == "x" and cfg.data.dataset.name == "fashion-mnist"


@pytest.mark.parametrize("raw,message", [
    ({"model": {"name": "m", "train": {"epochs": "two"}}}, "model.train.epochs: expected an integer, got 'two'"),
    ({"model": {"name": "m", "train": {"optimiser": "sgd"}}}, "model.train.optimiser: unknown key; did you mean 'optimizer'"),
    ({"model": {"name": "m", "train": {"optimizer": "rmsprop"}}}, "expected one of 'sgd', 'adam', 'adamw', got 'rmsprop'"),
    ({"model": {"name": "m"}, "atack": []}, "atack: unknown section; did you mean 'attack'?"),
    ({}, "model: missing section"),
    ({"model": {"name": "m"}, "attack": [{"eps": 1}]}, "attack[0].name: missing or not a string"),
    ({"model": {"name": "m"}, "attack": [{"name": "pgd", "sweep": {"eps": 0.1}}]}, "attack[0].sweep: expected one parameter and a list"),
    # a threat model is a registered name (plugins add more): unknown names fail when the experiment
    # resolves its components (tests/test_threat_model_objects.py), the type here
    ({"model": {"name": "m"}, "evaluate": {"modes": [3]}}, "evaluate.modes[0]: expected a string, got 3"),
    ({"model": {"name": "m"}, "data": {"name": "digits", "train_fraction": "a lot"}}, "data.train_fraction: expected a number"),
])
def test_errors_name_the_toml_path(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert message in str(e.value)


def test_an_overridden_parameter_shows_in_the_attacks_label():
    """`--set attack.1.steps=20` on a TOML labelling the attack "PGD-10" must not print "PGD-10"."""
    raw = {"model": M, "attack": [{"name": "fgsm"}, {"name": "pgd", "steps": 10, "label": "PGD-10"}]}
    cfg = parse_config(apply_overrides(raw, ["attack.1.steps=20", "attack.0.eps=0.2"]))
    assert [a.label for a in cfg.attacks] == ["fgsm(eps=0.2)", "PGD-10 [steps=20]"]
    assert cfg.attacks[1].component.params["steps"] == 20
    relabelled = parse_config(apply_overrides(raw, ["attack.1.label=\"PGD-20\"", "attack.1.steps=20"]))
    assert relabelled.attacks[1].label == "PGD-20 [steps=20]"


def test_sweeps_expand_into_labelled_attacks():
    cfg = parse_config({**base(), "attack": [{"name": "fgsm", "label": "FGSM", "sweep": {"eps": [0.1, "8/255"]}}]})
    assert [a.label for a in cfg.attacks] == ["FGSM[eps=0.1]", "FGSM[eps=8/255]"]
    assert cfg.attacks[1].component.params == {"eps": "8/255"}


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(base(), ["model.train.epochs"])
    with pytest.raises(ConfigError, match="index below 1, or 1 to add a table"):
        apply_overrides(base(), ["attack.4.steps=2"])


def test_the_index_past_the_end_adds_a_table():
    """`--set attack.1.name=square` on a config with one attack appends a second one, so a run can
    add an attack (a gradient-free one beside the gradient ones) without a copy of the TOML."""
    raw = apply_overrides(base(), ["attack.1.name=square", "attack.1.queries=100", "attack.1.label=Square-100"])
    cfg = parse_config(raw)
    assert [a.label for a in cfg.attacks][1] == "Square-100"
    assert cfg.attacks[1].component.params == {"queries": 100}
    assert len(base()["attack"]) == 1  # the source config is not changed
    with pytest.raises(ConfigError, match="attack\\[1\\].name: missing"):
        parse_config(apply_overrides(base(), ["attack.1.queries=100"]))


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname = 1")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(bad)
    binary = tmp_path / "binary.toml"
    binary.write_bytes(bytes(range(128, 256)))
    with pytest.raises(ConfigError, match="not a text"):
        load_config(binary)


def test_test_limit_above_the_test_set_warns_and_uses_all():
    import torch

    import advx
    from advx.errors import AdvxWarning

    exp = advx.load_experiment({"model": {"name": "digits-cnn"}, "data": {"name": "digits", "test_limit": 10_000}})
    with pytest.warns(AdvxWarning, match="data.test_limit: 10000 is more than the 539 test samples of digits; using all"):
        _, test_index, _ = exp.prepare_data(torch.device("cpu"))
    assert len(test_index) == 539



def test_the_test_subset_is_drawn_by_subset_seed_not_by_the_training_seed():
    """Claims pool training seeds over one fixed subset (#45): experiment.seed trains, data.subset_seed
    draws which test images (and folds) every seed is judged on; 0 draws what seed 0 drew before."""
    import torch

    import advx
    from advx.data.splits import stratified_subset
    from advx.errors import ConfigError

    def subset(**over):
        raw = {"model": {"name": "digits-cnn"}, "data": {"name": "digits", "test_limit": 60, "splits": 3}}
        raw["experiment"] = {"seed": over.pop("seed", 0)}
        raw["data"].update(over)
        _, index, _ = advx.load_experiment(raw).prepare_data(torch.device("cpu"))
        return index

    base = subset()
    assert torch.equal(base, subset(seed=1)) and torch.equal(base, subset(seed=2))
    assert not torch.equal(base, subset(subset_seed=1))
    y = advx.create("dataset", "digits").load().y_test
    assert torch.equal(base, stratified_subset(y, 60 / len(y), 1)[:60])  # the draw the seed-0 runs made
    with pytest.raises(ConfigError, match="data.subset_seed: expected a non-negative integer, got -1"):
        advx.load_experiment({"model": {"name": "digits-cnn"}, "data": {"name": "digits", "subset_seed": -1}})


M = {"name": "m"}
D = [{"label": "g", "chain": [{"name": "crop-rescale"}]}]


@pytest.mark.parametrize("raw,message", [  # each once a traceback or a silently meaningless table
    ({"model": {"name": "m", "train": {"batch_size": 0}}}, "model.train.batch_size: expected a positive integer, got 0"),
    ({"model": {"name": "m", "train": {"batch_size": -8}}}, "model.train.batch_size: expected a positive integer"),
    ({"model": {"name": "m", "train": {"epochs": -1}}}, "model.train.epochs: expected a positive integer, got -1"),
    ({"model": {"name": "m", "train": {"lr": float("nan")}}}, "model.train.lr: expected a positive, finite"),
    ({"model": M, "train": [{"label": "ft", "epochs": 0}]}, "train[ft].epochs: expected a positive integer"),
    ({"model": M, "evaluate": {"chunk_size": 0}}, "evaluate.chunk_size: expected a positive integer, got 0"),
    ({"model": M, "evaluate": {"chunk_size": -5}}, "evaluate.chunk_size: expected a positive integer"),
    ({"model": M, "evaluate": {"eot": 0}}, "evaluate.eot: expected a positive integer"),
    ({"model": M, "evaluate": {"modes": "adaptive"}}, "evaluate.modes: expected a list, e.g. modes = ['adaptive']"),
    ({"model": M, "data": {"name": "digits", "splits": 0}}, "data.splits: expected a positive integer, got 0"),
    ({"model": M, "data": {"name": "digits", "train_fraction": 0.0}}, "data.train_fraction: expected a number in (0, 1]"),
    ({"model": M, "data": {"name": "digits", "val_fraction": 1.0}}, "data.val_fraction: expected a number in [0, 1)"),
    ({"model": M, "data": {"name": "digits", "test_limit": 0}}, "data.test_limit: expected a positive integer, got 0"),
    ({"model": M, "data": {"name": "digits", "test_limit": -5}}, "data.test_limit: expected a positive integer"),
    ({"model": M, "defense": [{**D[0], "repeats": 0}]}, "defense[g].repeats: expected a positive integer"),
    ({"model": M, "defense": [{**D[0], "eot": 0}]}, "defense[g].eot: expected a positive integer"),
    ({"model": M, "defense": [{"label": "none", "chain": D[0]["chain"]}]}, "'none' is the undefended baseline"),
    ({"model": M, "defense": D + D}, "defense[1].label: 'g' is used by another defence"),
    ({"model": M, "defense": [{"label": "g", "chain": []}]}, "defense[0].chain: empty"),
    ({"model": M, "defense": [{**D[0], "min_scale": 0.5}]}, "defense[0].min_scale: unknown key beside chain"),
    ({"model": M, "train": [{"label": "ft", "init": "later"}, {"label": "later"}]},
     "train[ft].init: expected 'scratch' or the label of an earlier trained model (base), got 'later'"),
    ({"model": {"name": "m", "train": {"init": "base"}}}, "model.train.init: expected 'scratch' or the label"),
    ({"model": {"name": "m", "train": {"schedule": "multistep"}}}, "model.train.milestones: expected increasing"),
    ({"model": {"name": "m", "train": {"schedule": "multistep", "milestones": [4, 2]}}}, "milestones: expected"),
])
def test_values_that_would_train_or_evaluate_nothing_are_refused(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert message in str(e.value)
