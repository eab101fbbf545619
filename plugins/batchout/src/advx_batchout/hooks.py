"""Register paper 002's augmentations with advx."""

from __future__ import annotations

from advx.api import hookimpl

from .batchout import BatchOut, FeatureNoise

#: the advx plugin API range this plugin is written for (advx.api.API_VERSION)
ADVX_API = ">=1.0,<2"


@hookimpl
def advx_register_training_augmentations() -> list[type]:
    return [BatchOut, FeatureNoise]
