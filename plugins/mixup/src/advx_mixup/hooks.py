"""Register paper 001's training augmentations (and paper 004's IAT) with advx."""

from __future__ import annotations

from advx.api import hookimpl

from .adversarial import InterpolatedAdversarialTraining, PartialPGD
from .mixing import ManifoldMixup, Mixup, SoftLabels

#: the advx plugin API range this plugin is written for (advx.api.API_VERSION)
ADVX_API = ">=1.0,<2"


@hookimpl
def advx_register_training_augmentations() -> list[type]:
    return [Mixup, ManifoldMixup, SoftLabels, PartialPGD, InterpolatedAdversarialTraining]
