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
    ({"model": {"name": "m"}, "evaluate": {"modes": ["sneaky"]}}, "evaluate.modes[0]: expected one of 'oblivious', 'adaptive'"),
    ({"model": {"name": "m"}, "data": {"name": "digits", "train_fraction": "a lot"}}, "data.train_fraction: expected a number"),
])
def test_errors_name_the_toml_path(raw, message):
    with pytest.raises(ConfigError) as e:
        parse_config(raw)
    assert message in str(e.value)


def test_sweeps_expand_into_labelled_attacks():
    cfg = parse_config({**base(), "attack": [{"name": "fgsm", "label": "FGSM", "sweep": {"eps": [0.1, "8/255"]}}]})
    assert [a.label for a in cfg.attacks] == ["FGSM[eps=0.1]", "FGSM[eps=8/255]"]
    assert cfg.attacks[1].component.params == {"eps": "8/255"}


def test_bad_override_syntax():
    with pytest.raises(ConfigError, match="expected KEY=VALUE"):
        apply_overrides(base(), ["model.train.epochs"])
    with pytest.raises(ConfigError, match="index below 1"):
        apply_overrides(base(), ["attack.4.steps=2"])


def test_missing_and_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="no such config file"):
        load_config(tmp_path / "nope.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[model\nname = 1")
    with pytest.raises(ConfigError, match="TOML syntax error"):
        load_config(bad)
