"""The contract is what protocols.py declares: run an experiment whose attack, defence and
training recipe record every attribute anyone reads on them, and fail if the core reads one that
``advx.protocols.DECLARED`` does not list for that kind (a new call must be declared first)."""

from typing import ClassVar

import attrs
import torch

from advx.api import AttackBase, AugmentationBase, InputTransformDefense
from advx.evaluation.experiment import Experiment
from advx.config import load_config
from advx.protocols import DECLARED

from advx.registry import Registry, make_plugin_manager

from .test_registry import plugin

SEEN: dict[str, set[str]] = {"attack": set(), "inference_defense": set(), "training_augmentation": set()}


def recording(kind: str):
    """A mixin recording every non-dunder attribute read on the instance under ``kind``."""

    class Recording:
        def __getattribute__(self, name):
            if not (name.startswith("__") and name.endswith("__")):
                SEEN[kind].add(name)
            return object.__getattribute__(self, name)

    return Recording


@attrs.frozen
class RecordedAttack(recording("attack"), AttackBase):
    name: ClassVar[str] = "recorded-attack"
    eps: float = 0.1

    def perturb(self, model, x, y, *, target, generator, eps):
        return x + eps * torch.sign(torch.randn(x.shape, generator=generator))


@attrs.frozen
class RecordedDefense(recording("inference_defense"), InputTransformDefense):
    name: ClassVar[str] = "recorded-defense"

    def transform(self, x, model, generator, context):
        return x.clamp(0.05, 0.95)


@attrs.define
class RecordedRecipe(recording("training_augmentation"), AugmentationBase):
    name: ClassVar[str] = "recorded-recipe"

    def augment(self, batch, ctx):
        return batch


def test_the_core_reads_only_what_the_protocols_declare(tmp_path):
    pm = make_plugin_manager()  # built-ins and the installed plugins (the model and data come from them)
    for kind_hook, cls in (("advx_register_attacks", RecordedAttack),
                           ("advx_register_inference_defenses", RecordedDefense),
                           ("advx_register_training_augmentations", RecordedRecipe)):
        pm.register(plugin(kind_hook, cls))
    reg = Registry(pm, strict=True)
    cfg = {"experiment": {"seed": 0}, "data": {"name": "digits", "test_limit": 16},
           "model": {"name": "digits-cnn", "train": {"epochs": 1, "augment": [{"name": "recorded-recipe"}]}},
           "defense": [{"label": "d", "chain": [{"name": "recorded-defense"}]}],
           "attack": [{"name": "recorded-attack", "label": "A"}],
           "evaluate": {"modes": ["oblivious", "adaptive"], "metrics": ["accuracy", "worst-case"]}}
    Experiment(load_config(cfg), reg).run(tmp_path / "r.h5")
    own = {kind: {f.name for f in attrs.fields(cls)} for kind, cls in
           (("attack", RecordedAttack), ("inference_defense", RecordedDefense),
            ("training_augmentation", RecordedRecipe))}
    for kind, seen in SEEN.items():
        assert seen, f"nothing was read on the {kind}: the recording did not run"
        undeclared = seen - set(DECLARED[kind]) - own[kind]
        assert not undeclared, f"the core reads {sorted(undeclared)} on a {kind}: declare them in advx.protocols"
