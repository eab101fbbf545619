"""advx's own components, registered through the same hooks as any plugin."""

from __future__ import annotations

from advx.registry import hookimpl


@hookimpl
def advx_register_datasets() -> list[type]:
    from advx.data.sources import DATASETS

    return list(DATASETS)


@hookimpl
def advx_register_evaluators() -> list[type]:
    from advx.evaluation.metrics import EVALUATORS

    return list(EVALUATORS)


@hookimpl
def advx_register_training_augmentations() -> list[type]:
    from advx.data.augment import CropFlip

    return [CropFlip]


@hookimpl
def advx_register_models() -> list[type]:
    from advx.model_sources import TorchScriptModel

    return [TorchScriptModel]
