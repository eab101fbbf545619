"""Training, in one place.

- :mod:`.loop`: the trainer (optimiser, schedule, loss, the TrainingAugmentation hooks in order).
- :mod:`.cache`: trained weights stored under the hash of everything that determines them.
- :mod:`.models`: every model an experiment needs, built, trained or loaded from the cache.
- :mod:`.adversarial`: PGD and FGSM adversarial training, the recipes the papers build on.

Weights files people hand around (state dicts, safetensors, TorchScript, input normalisation)
are read by :mod:`advx.checkpoints`.
"""

from .cache import load_checkpoint, save_checkpoint
from .loop import TrainContext, adapt_model, call_hook, create_image_augmentation, frozen_copy, spec_hash, train

__all__ = ["TrainContext", "adapt_model", "call_hook", "create_image_augmentation", "frozen_copy", "load_checkpoint",
           "save_checkpoint", "spec_hash", "train"]
