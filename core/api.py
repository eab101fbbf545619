"""The one module a plugin imports: every name advx offers plugin authors, in one place.

Components subclass or return these; the protocols they satisfy are in :mod:`advx.protocols`
(what the core calls, with signatures) and the registry's tutorial (``help(advx.registry)``)
shows one complete plugin. Import from here rather than from advx's inner modules, which may move.
"""

from advx.attack_context import may_stop_when_fooled
from advx.contract import API_VERSION
from advx.data.augment import ImageAugmentation, cutout, random_crop, random_flip, random_solarize
from advx.data.bundle import DataBundle, as_float
from advx.data.splits import training_subset
from advx.evaluation.results import MetricTable
from advx.evaluation.threat_models import ThreatModel, attacked
from advx.ledger import sample_rows, tally
from advx.losses import focal_loss, one_hot, soft_cross_entropy
from advx.model_sources import module_digest
from advx.progress import progress, progress_part, report_progress
from advx.protocols import (AttackBase, AugmentationBase, Batch, InputTransformDefense, frozen_params,
                            per_sample)
from advx.registry import hookimpl
from advx import streams
from advx.training import TrainContext, frozen_copy, load_checkpoint, save_checkpoint
from advx.training.adversarial import AdversarialTraining, FGSMTraining

__all__ = [
    "API_VERSION", "AdversarialTraining", "AttackBase", "AugmentationBase", "Batch", "DataBundle", "FGSMTraining",
    "ImageAugmentation", "InputTransformDefense", "MetricTable", "TrainContext", "as_float", "cutout", "focal_loss", "frozen_copy", "frozen_params", "hookimpl",
    "load_checkpoint", "may_stop_when_fooled", "module_digest", "one_hot", "per_sample", "progress", "progress_part", "report_progress", "random_crop", "random_flip",
    "random_solarize", "sample_rows", "save_checkpoint", "soft_cross_entropy", "streams", "ThreatModel", "attacked",
    "tally", "training_subset",
]
