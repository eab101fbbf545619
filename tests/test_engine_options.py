"""Engine options: bf16 autocast, channels_last, torch.compile and automatic batch sizes run
end to end on CPU with sane numbers."""

import numpy as np
import pytest

import advx
from advx.batching import CPU_BATCH, auto_batch_size, batch_from_memory
from advx.errors import ConfigError


def test_bf16_and_channels_last(tmp_path, tiny_config):
    tiny_config["experiment"].update({"precision": "bf16", "channels_last": True})
    tiny_config.pop("defense")
    res = advx.load_experiment(tiny_config).run(tmp_path / "r.h5")
    clean = res.get("base", "none", "clean").accuracy
    pgd = res.get("base", "none", "PGD-3", "oblivious")
    assert clean > 80
    assert pgd.accuracy < clean
    assert float(pgd.arrays["linf"].max()) <= 0.1 + 1e-3  # bf16 inputs round, the budget still holds


def test_compiled_models_give_the_eager_numbers(tmp_path, tiny_config):
    tiny_config.pop("defense")
    tiny_config["attack"] = tiny_config["attack"][1:]
    eager = advx.load_experiment(tiny_config).run(tmp_path / "eager.h5", cache_dir=tmp_path / "cache")
    # aot_eager: torch.compile's graph capture (dynamo, AOT autograd: what advx's wiring meets) without
    # inductor's C++ code generation, which cost 25 s of the suite on a cold cache
    tiny_config["experiment"].update(compile=True, compile_backend="aot_eager")
    compiled = advx.load_experiment(tiny_config).run(tmp_path / "compiled.h5", cache_dir=tmp_path / "cache")
    for cell in ("clean", "PGD-3"):
        mode = "clean" if cell == "clean" else "oblivious"
        a, b = eager.get("base", "none", cell, mode), compiled.get("base", "none", cell, mode)
        assert np.mean(a.arrays["prediction"] == b.arrays["prediction"]) >= 0.98
        np.testing.assert_allclose(a.arrays["loss"], b.arrays["loss"], atol=1e-3)


def test_batch_from_memory_is_the_largest_power_of_two_that_fits():
    gib = 1 << 30
    assert batch_from_memory(40 * gib, 10 * (1 << 20)) == 2048  # 20 GiB usable / 10 MiB per sample
    assert batch_from_memory(40 * gib, 1000) == 4096  # capped
    assert batch_from_memory(1 << 20, 1 << 20) == 16  # floor
    assert batch_from_memory(3 * gib, 1 << 20, fraction=1.0) == 2048


def test_auto_batch_on_cpu_and_bad_values(tiny_config):
    import torch

    model = advx.create("model", "digits-cnn").build(num_classes=10, in_channels=1)
    assert auto_batch_size(model, torch.rand(1, 1, 8, 8)) == CPU_BATCH
    tiny_config["evaluate"]["batch_size"] = "auto"
    assert advx.load_experiment(tiny_config).config.evaluate.batch_size == "auto"
    tiny_config["evaluate"]["batch_size"] = 0
    with pytest.raises(ConfigError, match="evaluate.batch_size: expected a positive integer or \"auto\""):
        advx.load_experiment(tiny_config)


def test_a_compile_backend_torch_lacks_is_refused(tiny_config):
    tiny_config["experiment"]["compile_backend"] = "tensorrt"
    with pytest.raises(ConfigError, match="experiment.compile_backend"):
        advx.load_experiment(tiny_config)


def test_unknown_engine_option_is_rejected(tiny_config):
    tiny_config["experiment"]["compiled"] = True
    with pytest.raises(ConfigError, match="experiment.compiled: unknown key; did you mean 'compile'"):
        advx.load_experiment(tiny_config)
