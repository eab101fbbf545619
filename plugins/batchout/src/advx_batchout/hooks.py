"""Register paper 002's augmentations with advx."""

from __future__ import annotations

from advx.api import hookimpl

from .batchout import BatchOut, FeatureNoise


@hookimpl
def advx_register_training_augmentations() -> list[type]:
    return [BatchOut, FeatureNoise]
