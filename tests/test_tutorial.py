"""The registry's tutorial (``advx.registry.__doc__``) runs verbatim: its plugin module, one
component of each kind, registers and goes through a whole experiment — trained with its
augmentation, defended by its three kinds of defence, attacked white-box and adaptively (EOT,
BPDA), and summarised by its evaluator — so the docs cannot drift from what the core calls."""

import re
import sys
import textwrap

import pytest

import advx.registry
from advx.evaluation.experiment import Experiment
from advx.config import load_config
from advx.registry import Registry, make_plugin_manager
from advx.testing import check_attack, check_augmentation, check_defense, make_batch, make_context


def tutorial_source() -> str:
    doc = advx.registry.__doc__
    start = doc.index("One complete example per kind")
    body = doc[start:].split("::\n\n", 1)[1]
    lines = []
    for line in body.splitlines():
        if line and not line.startswith("    "):
            break
        lines.append(line)
    return textwrap.dedent("\n".join(lines))


@pytest.fixture(scope="module")
def tutorial(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tutorial")
    (folder / "advx_tutorial_plugin.py").write_text(tutorial_source())
    sys.path.insert(0, str(folder))
    try:
        import advx_tutorial_plugin as module
    finally:
        sys.path.remove(str(folder))
    pm = make_plugin_manager()
    pm.register(module, name="tutorial")
    return module, Registry(pm, strict=True)


def test_every_kind_registers(tutorial):
    _, reg = tutorial
    assert "tiny-mlp" in reg.names("model") and "stripes" in reg.names("dataset")
    assert "sign-noise" in reg.names("attack") and "flip-lr" in reg.names("training_augmentation")
    assert {"blur3", "quantize", "random-shift"} <= set(reg.names("inference_defense"))
    assert "clean-gap" in reg.names("evaluator")
    assert re.search(r"def advx_register_\w+", tutorial_source())


def test_the_components_pass_the_contract_checks(tutorial):
    _, reg = tutorial
    data = reg.create("dataset", "stripes").load()
    model = reg.create("model", "tiny-mlp").build(2, 1).eval()
    x, y = data.x_test[:16].float(), data.y_test[:16]
    check_attack(reg.create("attack", "sign-noise", {"eps": 0.1}), model, x, y)
    for name in ("blur3", "quantize", "random-shift"):
        check_defense(reg.create("inference_defense", name), model, x, 2)
    ctx = make_context(model, data, registry=reg)
    check_augmentation(reg.create("training_augmentation", "flip-lr"), ctx, make_batch(data, 16))


def test_the_tutorial_plugin_runs_a_whole_experiment(tutorial, tmp_path):
    _, reg = tutorial
    raw = {"experiment": {"name": "tutorial", "seed": 0},
           "data": {"name": "stripes", "n": 200},
           "model": {"name": "tiny-mlp", "train": {"epochs": 8, "batch_size": 32, "lr": 0.01}},
           "train": [{"label": "flipped", "epochs": 8, "batch_size": 32, "lr": 0.01,
                      "augment": [{"name": "flip-lr"}]}],
           "defense": [{"label": "blur", "name": "blur3"}, {"label": "quantize", "name": "quantize"},
                       {"label": "shift", "name": "random-shift", "repeats": 2}],
           "attack": [{"name": "sign-noise", "eps": 0.1}, {"name": "pgd", "eps": 0.1, "steps": 3}],
           "evaluate": {"modes": ["oblivious", "adaptive"], "eot": 2, "randomized_attack": "none",
                        "metrics": ["accuracy", "clean-gap"]}}
    results = Experiment(load_config(raw), reg).run(tmp_path / "t.h5", device="cpu")
    assert results.get("base", "none", "clean").accuracy > 90  # the stripes are learnt
    for defense in ("blur", "quantize", "shift"):  # BPDA through quantize, EOT through shift
        cell = results.get("base", defense, "pgd(eps=0.1,steps=3)", "adaptive")
        assert cell is not None and cell.finished
    [gap] = results.metrics["clean-gap"]  # stored in the run file like every evaluator's tables
    assert {r[0] for r in gap.rows} == {"base", "flipped"} and len(gap.rows) == 4
    assert all(isinstance(r[2], float) for r in gap.rows)
