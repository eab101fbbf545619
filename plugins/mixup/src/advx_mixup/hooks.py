"""Register paper 001's training augmentations with advx."""

from __future__ import annotations

from advx.api import hookimpl

from .adversarial import AdversarialTraining, FGSMTraining, InterpolatedAdversarialTraining, PartialPGD
from .mixing import ManifoldMixup, Mixup, SoftLabels


@hookimpl
def advx_register_training_augmentations() -> list[type]:
    return [Mixup, ManifoldMixup, SoftLabels, AdversarialTraining, FGSMTraining, PartialPGD,
            InterpolatedAdversarialTraining]
