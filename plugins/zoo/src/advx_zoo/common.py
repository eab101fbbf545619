"""Pieces shared by the zoo's networks."""

from __future__ import annotations

import torch
from torch import nn


class Normalize(nn.Module):
    """(x - mean) / std per channel, inside the model so attacks work in [0, 1] pixel space."""

    def __init__(self, mean: tuple[float, ...], std: tuple[float, ...]) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1) if mean else torch.zeros(1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1) if std else torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def flat_dim(body: nn.Module, in_channels: int, size: int) -> int:
    """Number of features ``body`` produces for one size x size image."""
    with torch.no_grad():
        return int(body(torch.zeros(1, in_channels, size, size)).flatten(1).shape[1])


def check_layers(model: nn.Module) -> nn.Module:
    for name in getattr(model, "feature_layers", ()):
        model.get_submodule(name)
    return model
