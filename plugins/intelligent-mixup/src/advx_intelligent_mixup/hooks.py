"""Register paper 000's augmentation with advx (its noise-sensitivity evaluator is advx's
built-in ``noise-sensitivity``)."""

from __future__ import annotations

from advx.api import hookimpl

from .mixup import IntelligentMixup

#: the advx plugin API range this plugin is written for (advx.api.API_VERSION)
ADVX_API = ">=1.0,<2"


@hookimpl
def advx_register_training_augmentations() -> list[type]:
    return [IntelligentMixup]
