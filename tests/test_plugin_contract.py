"""The plugin contract as the core calls it: every TrainingAugmentation hook optional, a defence
with only ``transform`` accepted and wrapped, a targeted run of an untargeted attack refused
before anything trains."""

from typing import ClassVar

import attrs
import pytest
import torch

import advx
from advx import testing
from advx.api import as_float
from advx.config import TrainSettings
from advx.errors import ConfigError
from advx.registry import Registry
from advx.training import train

from .test_registry import plugin, registry_with


@attrs.define
class OnlyAugment:
    """A complete recipe with one hook: no setup, loss or teardown."""

    name: ClassVar[str] = "only-augment"
    calls: list = attrs.field(factory=list)

    def augment(self, batch, ctx):
        self.calls.append(len(batch.x))
        return batch


@attrs.frozen
class Halve:
    """A defence with only ``transform``: no wrap, no flags."""

    name: ClassVar[str] = "halve"

    def transform(self, x, model, generator, context):
        return x * 0.5


def test_a_recipe_with_only_augment_trains():
    reg = Registry()
    data = advx.create("dataset", "digits").load()
    model = reg.create("model", "digits-cnn").build(num_classes=10, in_channels=1)
    recipe = OnlyAugment()
    train(model, data, TrainSettings(epochs=1, batch_size=256), [recipe], seed=0, device=torch.device("cpu"),
          registry=reg)
    assert sum(recipe.calls) == len(data.x_train)
    testing.check_augmentation(OnlyAugment(), testing.make_context(model, data), testing.make_batch(data))


def test_a_transform_only_defence_registers_and_wraps():
    reg = registry_with(plugin("advx_register_inference_defenses", Halve))
    assert "halve" in reg.names("inference_defense")
    model, data = testing.digits_model(epochs=1)
    x = as_float(data.x_test[:8])
    testing.check_defense(Halve(), model, x, data.num_classes)
    from advx.defense import build_defended

    with torch.no_grad():
        assert torch.equal(build_defended(model, [Halve()])(x), model(x * 0.5))


def test_a_target_the_attack_cannot_take_fails_before_training():
    cfg = {"data": {"name": "digits", "test_limit": 20}, "model": {"name": "digits-cnn", "train": {"epochs": 1}},
           "attack": [{"name": "deepfool", "target": "random"}]}
    with pytest.raises(ConfigError, match=r"attack\[0\].target: attack 'deepfool' has no targeted variant"):
        advx.load_experiment(cfg).resolve()


@pytest.mark.parametrize("attack, params, message", [
    ("deepfool", {}, r"train\[0\].augment\[0\].attack: 'deepfool' is a minimal-norm attack \(no eps budget\)"),
    ("pgd", {"eps": 8, "alpha": 2, "steps": 1}, r"train\[0\].augment\[0\].params.eps: 8 is a linf budget .* 8/255"),
])
def test_a_recipe_attack_without_a_sane_budget_fails_before_training(attack, params, message):
    """A training recipe's attack is checked as an [[attack]]'s is, when the config resolves: no
    minimal-norm attack (its points are unbounded) and no budget that allows any image."""
    cfg = {"data": {"name": "digits", "test_limit": 20}, "model": {"name": "digits-cnn", "train": {"epochs": 1}},
           "train": [{"label": "AT", "augment": [{"name": "pgd-training", "attack": attack, "params": params}]}],
           "attack": [{"name": "fgsm", "eps": 0.1}]}
    with pytest.raises(ConfigError, match=message):
        advx.load_experiment(cfg).resolve()
