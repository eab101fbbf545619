"""Datasets as whole tensors: loaders (``sources``), the bundle they return, seeded stratified
splits and the batch-level data augmentations the trainer applies.

Small research datasets fit in memory (Fashion-MNIST is 47 MB as uint8), so a loader returns
everything at once and the evaluator moves it to the device in one copy; no DataLoader workers.
"""

from .bundle import DataBundle, as_float

__all__ = ["DataBundle", "as_float"]
