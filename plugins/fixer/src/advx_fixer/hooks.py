"""Register paper 003's training recipes with advx."""

from __future__ import annotations

from advx.api import hookimpl

from .augment import Paper003Augmentation
from .fixer import DenoisingBlocks, FixerTraining

#: the advx plugin API range this plugin is written for (advx.api.API_VERSION)
ADVX_API = ">=1.0,<2"


@hookimpl
def advx_register_training_augmentations() -> list[type]:
    return [FixerTraining, DenoisingBlocks, Paper003Augmentation]
