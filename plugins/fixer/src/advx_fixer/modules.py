"""The modules inserted into a frozen base model: fixer (paper 003, Table 7 / Fig. 1) and the
non-local-means denoising block (Xie et al. 2019) used as its baseline."""

from __future__ import annotations

import torch
from torch import nn


class FixerModule(nn.Module):
    """φ(h) = ζ(conv3x3_{C/ρ→C}(ReLU(conv1x1_{C→C/ρ}(h)))), ζ ∈ {linear, tanh}; same spatial size."""

    def __init__(self, channels: int, rho: int = 4, activation: str = "linear") -> None:
        super().__init__()
        hidden = max(1, channels // rho)
        self.conv_1 = nn.Conv2d(channels, hidden, 1)
        self.relu_1 = nn.ReLU()
        self.conv_2 = nn.Conv2d(hidden, channels, 3, padding=1)
        self.activation = nn.Tanh() if activation == "tanh" else nn.Identity()

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        return self.activation(self.conv_2(self.relu_1(self.conv_1(h))))


class NonLocalDenoise(nn.Module):
    """Feature denoising (Xie et al., "Feature denoising for improving adversarial robustness",
    CVPR 2019): non-local means without embedding — y_i = Σ_j softmax_j(h_i·h_j/√C) h_j — then a
    1x1 conv; the residual sum is taken by the wrapper."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 1)

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        b, c, hh, ww = h.shape
        f = h.flatten(2)  # B x C x N
        w = torch.softmax(torch.einsum("bci,bcj->bij", f, f) / c ** 0.5, dim=-1)
        y = torch.einsum("bij,bcj->bci", w, f).view(b, c, hh, ww)
        return self.conv(y)


class Fixed(nn.Module):
    """A base block followed by its fixer: out = ReLU(h + δ·φ(h)) with h = block(x) (paper 003,
    Eq. 1 and Table 7). ``enabled = False`` returns the base block's output untouched, which is
    how the base model's features h⁽⁰⁾ and its adversarial examples are computed."""

    def __init__(self, block: nn.Module, module: nn.Module, delta: float, output_relu: bool = True) -> None:
        super().__init__()
        self.block = block
        self.fixer = module
        self.delta = float(delta)
        self.output_relu = output_relu
        self.enabled = True

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.block(x)
        if not self.enabled:
            return h
        out = h + self.delta * self.fixer(h)
        return torch.relu(out) if self.output_relu else out


def channels_of(module: nn.Module) -> int:
    """Output channels of a block: the last conv's out_channels or batch-norm's num_features."""
    for m in reversed(list(module.modules())):
        if isinstance(m, nn.BatchNorm2d):
            return m.num_features
        if isinstance(m, nn.Conv2d):
            return m.out_channels
    raise ValueError(f"cannot infer the channels of {type(module).__name__}; set channels = [...]")


def replace(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def set_enabled(model: nn.Module, flag: bool) -> None:
    for m in model.modules():
        if isinstance(m, Fixed):
            m.enabled = flag
