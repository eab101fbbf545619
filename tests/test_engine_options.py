"""Engine options: bf16 autocast and channels_last run end to end on CPU with sane numbers."""

import advx


def test_bf16_and_channels_last(tmp_path, tiny_config):
    tiny_config["experiment"].update({"precision": "bf16", "channels_last": True})
    tiny_config.pop("defense")
    res = advx.load_experiment(tiny_config).run(tmp_path / "r.h5")
    clean = res.get("base", "none", "clean").accuracy
    pgd = res.get("base", "none", "PGD-3", "oblivious")
    assert clean > 80
    assert pgd.accuracy < clean
    assert float(pgd.arrays["linf"].max()) <= 0.1 + 1e-3  # bf16 inputs round, the budget still holds


def test_unknown_engine_option_is_rejected(tiny_config):
    import pytest

    from advx.errors import ConfigError

    tiny_config["experiment"]["compile"] = True
    with pytest.raises(ConfigError, match="experiment.compile: unknown key"):
        advx.load_experiment(tiny_config)
