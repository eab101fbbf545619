"""Contract tests run over every registered component of every kind."""

import pytest
import torch

import advx
from advx.protocols import AttackBase, InputTransformDefense
from advx.registry import field_table
from advx.testing import check_attack, check_augmentation, check_defense, digits_model, make_batch, make_context

REG = advx.get_registry()


@pytest.fixture(scope="module")
def trained():
    model, data = digits_model()
    return model, data


@pytest.mark.parametrize("name", REG.names("attack"))
def test_every_attack(trained, name):
    model, data = trained
    fields = {f for f, *_ in field_table(REG.get("attack", name))}
    cheap = {"steps": 3, "queries": 20, "targets": 2}  # every attack's budget knobs, shrunk
    attack = REG.create("attack", name, {k: v for k, v in cheap.items() if k in fields})
    assert isinstance(attack, AttackBase)
    check_attack(attack, model, data.x_test[:16], data.y_test[:16])


@pytest.mark.parametrize("name", REG.names("inference_defense"))
def test_every_defense(trained, name):
    model, data = trained
    d = REG.create("inference_defense", name)
    context = {"train_x": data.x_train, "train_y": data.y_train, "num_classes": 10}
    check_defense(d, model, data.x_test[:16], 10, context)
    if isinstance(d, InputTransformDefense):
        out = d.transform(data.x_test[:16], model, torch.Generator().manual_seed(0), context)
        assert out.shape == data.x_test[:16].shape and out.min() >= 0 and out.max() <= 1


@pytest.mark.parametrize("name", REG.names("training_augmentation"))
def test_every_training_augmentation(trained, name):
    _, data = trained
    model = advx.create("model", "digits-cnn").build(10, 1)
    fields = {f for f, *_ in field_table(REG.get("training_augmentation", name))}
    params = {"layers": ["relu1", "relu2"]} if "layers" in fields else {}  # conv maps suit every hook-based one
    if "params" in fields:  # adversarial recipes: shrink the inner attack
        default = REG.create("training_augmentation", name).params
        params["params"] = {**default, "eps": 0.1, **({"steps": 2} if "steps" in default else {})}
    check_augmentation(REG.create("training_augmentation", name, params), make_context(model, data), make_batch(data))


@pytest.mark.parametrize("name", REG.names("model"))
def test_every_model_declares_feature_layers(name, tmp_path):
    params = {}
    if name == "torchscript":  # the built-in that loads an archive: give it one
        net = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(3 * 32 * 32, 5))
        torch.jit.save(torch.jit.script(net), str(tmp_path / "net.ts"))
        params = {"path": str(tmp_path / "net.ts")}
    factory = REG.create("model", name, params)
    size = getattr(factory, "size", 32)
    channels = 1 if size in (8, 28) else 3
    model = factory.build(num_classes=5, in_channels=channels)
    assert model(torch.rand(2, channels, size, size)).shape == (2, 5)
    for layer in getattr(model, "feature_layers", ()):
        model.get_submodule(layer)


@pytest.mark.parametrize("name", REG.names("dataset"))
def test_every_dataset_has_a_load_and_a_docstring(name):
    cls = REG.get("dataset", name)
    assert callable(cls.load) and cls.__doc__


@pytest.mark.parametrize("kind", ["model", "dataset", "attack", "training_augmentation", "inference_defense",
                                  "evaluator"])
def test_every_component_is_described(kind):
    for name in REG.names(kind):
        text = REG.describe(kind, name)
        assert name in text and "parameters" in text
        assert REG.get(kind, name).__doc__, f"{kind} {name} has no docstring"
