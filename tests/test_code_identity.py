"""Results made by other plugin code are never reused: a plugin's source digest keys its cached
models and the run's identity, and the run file records it."""

import pytest

import advx
from advx.training.models import _variant_spec
from advx.evaluation.store import RunStore
from advx.errors import StoreError
from advx.registry import resolve
from advx.training import spec_hash

RAW = {"experiment": {"name": "code"}, "data": {"name": "digits", "test_limit": 8},
       "model": {"name": "digits-cnn", "train": {"epochs": 1}},
       "train": [{"label": "at", "augment": [{"name": "pgd-training", "params": {"eps": 0.1, "steps": 2}}]}],
       "attack": [{"name": "fgsm", "eps": 0.1}]}


def test_package_digest_follows_the_source_files(tmp_path, monkeypatch):
    pkg = tmp_path / "advx_probe_pkg"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("X = 1\n")
    (pkg / "more.py").write_text("Y = 2\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    __import__("advx_probe_pkg")
    first = resolve.package_digest("advx_probe_pkg")
    (pkg / "more.py").write_text("Y = 3\n")
    resolve._DIGESTS.pop("advx_probe_pkg")
    assert resolve.package_digest("advx_probe_pkg") != first


def test_a_recipe_model_is_keyed_by_the_code_of_its_network_recipe_and_attack(monkeypatch):
    exp = advx.load_experiment(RAW)
    cfg, reg = exp.config, exp.registry
    variant = cfg.trains[1]
    code = _variant_spec(cfg, variant, "base-hash", reg)["code"]
    assert {"advx_zoo", "advx.training.adversarial", "advx_attacks"} <= set(code)  # digits-cnn, pgd-training, PGD
    assert "advx" not in code and "advx.evaluation.runner" not in code  # the rest of the core leaves models alone
    before_model = spec_hash(_variant_spec(cfg, variant, "base-hash", reg))
    before_run = exp.config_hash()
    monkeypatch.setitem(resolve._DIGESTS, "advx_attacks", "changed-pgd-code")
    assert spec_hash(_variant_spec(cfg, variant, "base-hash", reg)) != before_model  # retrained, not reused
    assert spec_hash(_variant_spec(cfg, cfg.trains[0], None, reg)) == spec_hash(
        _variant_spec(cfg, cfg.trains[0], None, reg))
    assert exp.config_hash() != before_run  # a new run file by default, never a resume of the old cells
    assert exp.plugin_code()["advx_attacks"] == "changed-pgd-code"
    with_new_pgd = spec_hash(_variant_spec(cfg, variant, "base-hash", reg))
    monkeypatch.setitem(resolve._DIGESTS, "advx.training.adversarial", "changed-core-recipe")
    assert spec_hash(_variant_spec(cfg, variant, "base-hash", reg)) != with_new_pgd  # the core's recipe counts too


def test_the_base_model_does_not_depend_on_an_attack_plugin_it_never_used(monkeypatch):
    exp = advx.load_experiment(RAW)
    cfg, reg = exp.config, exp.registry
    base = spec_hash(_variant_spec(cfg, cfg.trains[0], None, reg))
    monkeypatch.setitem(resolve._DIGESTS, "advx_attacks", "changed-pgd-code")
    assert spec_hash(_variant_spec(cfg, cfg.trains[0], None, reg)) == base


def test_a_run_file_of_the_same_config_made_by_other_code_is_refused_naming_the_plugin(tmp_path):
    path = tmp_path / "r.h5"
    with RunStore(path) as s:
        s.initialize("{}", "hash-a", {"torch": "2", "advx_attacks source": "aaa"}, "cpu")
    with RunStore(path) as s, pytest.raises(StoreError, match="made by other code of advx_attacks; keep both"):
        s.initialize("{}", "hash-b", {"torch": "2", "advx_attacks source": "bbb"}, "cpu")
    with RunStore(path, mode="r") as s:
        assert s.header()["versions"]["advx_attacks source"] == "aaa"
