"""The tensor bundle every dataset loader returns."""

from __future__ import annotations

from typing import Any

import attrs
import torch

from advx.errors import DatasetNotFoundError

from .splits import stratified_split


def as_float(x: torch.Tensor) -> torch.Tensor:
    """Images as float32 in [0, 1]: uint8 storage is divided by 255, float storage passes through.

    Loaders keep uint8 where the files are uint8 (4x less memory on the device); every consumer
    converts a batch at the moment it needs it.
    """
    if x.dtype == torch.uint8:
        return x.float().div_(255)
    return x if x.dtype == torch.float32 else x.float()


def _check_pair(x: torch.Tensor, y: torch.Tensor, split: str) -> None:
    if x.ndim != 4:
        raise ValueError(f"{split} images must be NCHW (4 dims), got shape {tuple(x.shape)}")
    if len(x) != len(y):
        raise ValueError(f"{split} has {len(x)} images but {len(y)} labels")


@attrs.define
class DataBundle:
    """Train and test images (NCHW; uint8 0-255 or float 0-1) with int64 labels and class names.

    ``x_val``/``y_val`` hold a validation split carved out of the training set when one is asked for.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    classes: tuple[str, ...] = attrs.field(converter=tuple)
    x_val: torch.Tensor | None = None
    y_val: torch.Tensor | None = None

    def __attrs_post_init__(self) -> None:
        _check_pair(self.x_train, self.y_train, "train")
        _check_pair(self.x_test, self.y_test, "test")
        if self.x_train.shape[1:] != self.x_test.shape[1:]:
            raise ValueError(f"train images are {tuple(self.x_train.shape[1:])} but test images are "
                             f"{tuple(self.x_test.shape[1:])}")
        self.y_train, self.y_test = self.y_train.long(), self.y_test.long()

    @classmethod
    def split(cls, x: torch.Tensor, y: torch.Tensor, classes: tuple[str, ...], test_fraction: float,
              seed: int) -> "DataBundle":
        """A bundle from one pool of samples, holding out a seeded stratified ``test_fraction``
        (1: every sample is test data and the training split is empty — a set for evaluation only)."""
        if test_fraction >= 1:
            return cls(x[:0], y[:0], x, y, classes)
        train, test = stratified_split(y, test_fraction, seed)
        return cls(x[train], y[train], x[test], y[test], classes)

    @property
    def num_classes(self) -> int:
        return len(self.classes)

    @property
    def in_channels(self) -> int:
        return int(self.x_train.shape[1])

    @property
    def image_shape(self) -> tuple[int, int, int]:
        c, h, w = self.x_train.shape[1:]
        return int(c), int(h), int(w)

    def to(self, device: torch.device | str) -> "DataBundle":
        """A copy with every tensor on ``device`` (the whole set lives there during a run)."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            return None if t is None else t.to(device)

        return DataBundle(move(self.x_train), move(self.y_train), move(self.x_test), move(self.y_test),
                          self.classes, move(self.x_val), move(self.y_val))


def check_values(data: DataBundle, dataset: Any) -> None:
    """Refuse, when the data is read, pixels that are NaN or infinite and labels outside
    0 … classes − 1: a NaN image is predicted as some class and counted (clean 100 % was seen), a
    label of −1 ends in torch's IndexError. The message names the file (or the dataset) and counts."""
    source = getattr(dataset, "path", None) or getattr(dataset, "root", None) or getattr(dataset, "name", "data")
    for split, x, y in (("train", data.x_train, data.y_train), ("test", data.x_test, data.y_test)):
        if x.is_floating_point() and len(x):
            bad = ~torch.isfinite(x.flatten(1)).all(1)
            if bad.any():
                first = int(bad.nonzero()[0])
                raise DatasetNotFoundError(f"{source}: {int(bad.sum())} of {len(x)} {split} images have NaN or "
                                           f"infinite pixels (the first at index {first}); fix or drop them")
        if len(y):
            wrong = (y < 0) | (y >= data.num_classes)
            if wrong.any():
                first = int(wrong.nonzero()[0])
                raise DatasetNotFoundError(f"{source}: {int(wrong.sum())} {split} labels are outside 0..{data.num_classes - 1}"
                                           f" (the first, at index {first}, is {int(y[first])}); labels are class "
                                           f"indices from 0")
