"""Batch-level image augmentations chosen by ``[data] augment`` (or a variant's ``data_augment``).

They run on the batch's device, vectorised over the batch, with random numbers drawn from the
trainer's CPU generator so a seed fixes them on any device.

- ``crop-flip``: reflect-pad + random crop and horizontal flips (the standard CIFAR recipe).
- ``paper003``: paper 003 (fixers), Section 4 training details: reflect-pad + random crop, flips,
  solarize(threshold 0.5, p = 0.3) and a 10x10 cutout (sizes scale with the image: 10 px at 32 px).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

KINDS = ("none", "crop-flip", "paper003")


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


def augment_batch(x: torch.Tensor, kind: str, g: torch.Generator) -> torch.Tensor:
    """Apply augmentation ``kind`` (one of ``KINDS``) to a float batch in [0, 1]."""
    if kind == "none":
        return x
    if kind not in KINDS:
        raise ValueError(f"unknown data augmentation {kind!r}; expected one of {', '.join(KINDS)}")
    h = x.shape[-2]
    x = random_flip(random_crop(x, max(1, round(h / 8)), g), g)
    if kind == "paper003":
        x = cutout(random_solarize(x, g), max(1, round(10 * h / 32)), g)
    return x
