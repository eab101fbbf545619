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
def advx_register_threat_models() -> list[type]:
    from advx.evaluation.threat_models import THREAT_MODELS

    return list(THREAT_MODELS)


@hookimpl
def advx_register_training_augmentations() -> list[type]:
    from advx.data.augment import CropFlip
    from advx.training.adversarial import AdversarialTraining, FGSMTraining

    return [CropFlip, AdversarialTraining, FGSMTraining]


@hookimpl
def advx_register_models() -> list[type]:
    from advx.model_sources import TorchScriptModel

    return [TorchScriptModel]


@hookimpl
def advx_register_sources() -> dict[str, dict[str, type]]:
    """``torchvision:resnet18``, ``python:pkg.mod:fn`` and the like: networks and data sets built
    from a name the registry does not hold (advx.model_sources, advx.data.external)."""
    from advx.data.external import SOURCES as DATA_SOURCES
    from advx.model_sources import SOURCES as MODEL_SOURCES

    return {"model": dict(MODEL_SOURCES), "dataset": dict(DATA_SOURCES)}
