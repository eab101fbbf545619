"""Batch-level image operations for data-pipeline augmentations, and the built-in ``crop-flip``.

A data-pipeline augmentation is an :class:`ImageAugmentation` (a training augmentation with
``augment_images``) named in ``[data] augment`` or a variant's ``data_augment``: the trainer runs
it on every batch before any recipe sees it. The operations run on the batch's device, vectorised
over the batch, with random numbers drawn from the trainer's CPU generator so a seed fixes them on
any device. Paper-specific presets live in their plugins (paper 003's ``paper003``: advx-fixer).
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
import torch.nn.functional as F

from advx.protocols import AugmentationBase, Batch


def _uniform(n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.rand(n, generator=g).to(device)


def _randint(high: int, n: int, g: torch.Generator, device: torch.device) -> torch.Tensor:
    return torch.randint(0, high, (n,), generator=g).to(device)


def random_crop(x: torch.Tensor, pad: int, g: torch.Generator) -> torch.Tensor:
    """Reflect-pad by ``pad`` and crop back to the input size at a random offset per sample."""
    n, c, h, w = x.shape
    pad = min(pad, h - 1, w - 1)
    if pad < 1:
        return x
    padded = F.pad(x, (pad, pad, pad, pad), mode="reflect")
    rows = _randint(2 * pad + 1, n, g, x.device)[:, None] + torch.arange(h, device=x.device)
    cols = _randint(2 * pad + 1, n, g, x.device)[:, None] + torch.arange(w, device=x.device)
    batch = torch.arange(n, device=x.device)[:, None, None, None]
    chans = torch.arange(c, device=x.device)[None, :, None, None]
    return padded[batch, chans, rows[:, None, :, None], cols[:, None, None, :]]


def random_flip(x: torch.Tensor, g: torch.Generator, p: float = 0.5) -> torch.Tensor:
    """Mirror left-right each sample with probability ``p``."""
    flip = _uniform(len(x), g, x.device) < p
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def random_solarize(x: torch.Tensor, g: torch.Generator, threshold: float = 0.5, p: float = 0.3) -> torch.Tensor:
    """With probability ``p`` per sample, invert the pixels at or above ``threshold``."""
    pick = (_uniform(len(x), g, x.device) < p)[:, None, None, None]
    return torch.where(pick & (x >= threshold), 1 - x, x)


def cutout(x: torch.Tensor, size: int, g: torch.Generator) -> torch.Tensor:
    """Zero a ``size`` x ``size`` square centred at a random pixel (clipped at the border)."""
    n, _, h, w = x.shape
    cy, cx = _randint(h, n, g, x.device), _randint(w, n, g, x.device)
    top, left = cy - size // 2, cx - size // 2
    r, c = torch.arange(h, device=x.device), torch.arange(w, device=x.device)
    in_rows = (r >= top[:, None]) & (r < top[:, None] + size)
    in_cols = (c >= left[:, None]) & (c < left[:, None] + size)
    hole = in_rows[:, :, None] & in_cols[:, None, :]
    return x.masked_fill(hole[:, None], 0.0)


@attrs.define
class ImageAugmentation(AugmentationBase):
    """A data-pipeline augmentation: ``augment_images(x, generator) -> x`` rewrites a float batch
    in [0, 1] (labels unchanged). Named in ``[data] augment`` it runs on every training batch
    before the recipe (so a recipe crafts its adversarials on the augmented images, as paper 003
    does, and sees the name in ``ctx.data_augment``); listed in a recipe it runs where it stands."""

    name: ClassVar[str] = "image-augmentation"

    def augment_images(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        return Batch(self.augment_images(batch.x, ctx.generator), batch.y, batch.index)


@attrs.define
class CropFlip(ImageAugmentation):
    """The standard CIFAR recipe: reflect-pad by 1/8 of the side, random crop back, and a
    horizontal flip with probability 1/2 (4 px and 50 % on 32 x 32)."""

    name: ClassVar[str] = "crop-flip"

    def augment_images(self, x: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        return random_flip(random_crop(x, max(1, round(x.shape[-2] / 8)), generator), generator)
