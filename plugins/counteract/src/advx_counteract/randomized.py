"""Randomized input defences used as paper 004's baselines (and composed with counteract)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
import torch.nn.functional as F

from advx.api import as_float, InputTransformDefense, streams


def _size(scale: float, side: int) -> int:
    return max(1, min(side, round(scale * side)))


def draw_windows(n: int, h: int, w: int, min_scale: float, max_scale: float,
                 g: Any) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Per sample: a random square side s in [min_scale, max_scale]·h (whole pixels) and a random
    (top, left) placing it inside an h x w image — each image gets its own draw, as in Xie et al.
    and Guo et al. (a draw shared by the batch makes a 10-repeat average a 10-window average)."""
    s = streams.integers(g, _size(min_scale, h), _size(max_scale, h) + 1, (n,)).cpu()
    top = (streams.uniform(g, (n,)).cpu() * (h - s + 1)).floor().clamp(max=h - s)
    left = (streams.uniform(g, (n,)).cpu() * (w - s + 1)).floor().clamp(max=w - s)
    return s.float(), top, left


def affine_resample(x: torch.Tensor, scale_h: torch.Tensor, scale_w: torch.Tensor, shift_h: torch.Tensor,
                    shift_w: torch.Tensor, padding: str = "zeros") -> torch.Tensor:
    """Bilinear resampling of each image by its own axis-aligned affine map in normalised
    coordinates (input = scale·output + shift); points outside the input read ``padding``."""
    n = x.shape[0]
    theta = torch.zeros(n, 2, 3, dtype=x.dtype, device=x.device)
    theta[:, 0, 0], theta[:, 0, 2] = scale_w.to(x), shift_w.to(x)
    theta[:, 1, 1], theta[:, 1, 2] = scale_h.to(x), shift_h.to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode=padding, align_corners=False)


def _check_scales(inst: Any, attribute: Any, value: float) -> None:
    if not 0 < value <= 1:
        raise ValueError(f"{attribute.name} must be in (0, 1], got {value}")


@attrs.frozen
class RandomResizePad(InputTransformDefense):
    """Xie et al., "Mitigating adversarial effects through randomization", ICLR 2018: resize to a
    random r x r, then zero-pad at a random offset back to the input size. r is drawn per call
    from [min_scale, max_scale] x side, per image; paper 004 uses r in [22, 30] on 32x32 CIFAR-10
    (the defaults) and averages 50 executions (``repeats = 50``)."""

    name: ClassVar[str] = "random-resize-pad"
    per_sample_streams: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    min_scale: float = attrs.field(default=22 / 32, validator=_check_scales)
    max_scale: float = attrs.field(default=30 / 32, validator=_check_scales)

    def transform(self, x, model, generator, context):
        h, w = x.shape[-2:]
        r, top, left = draw_windows(x.shape[0], h, w, self.min_scale, self.max_scale, generator)
        # output pixels [top, top + r) show the whole input resized to r; the rest reads zero
        return affine_resample(x, h / r, w / r, (h - 2 * top - r) / r, (w - 2 * left - r) / r)


@attrs.frozen
class CropRescale(InputTransformDefense):
    """Guo et al., "Countering adversarial images using input transformations", ICLR 2018: a
    random crop of random size c x c, rescaled back to the input size (per image). c from [min_scale,
    max_scale] x side; paper 004 uses c in [22, 30] (mixup) / [24, 32] (IAT) on 32x32 and 50
    executions."""

    name: ClassVar[str] = "crop-rescale"
    per_sample_streams: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    min_scale: float = attrs.field(default=22 / 32, validator=_check_scales)
    max_scale: float = attrs.field(default=30 / 32, validator=_check_scales)

    def transform(self, x, model, generator, context):
        h, w = x.shape[-2:]
        c, top, left = draw_windows(x.shape[0], h, w, self.min_scale, self.max_scale, generator)
        # the whole output shows the input's c x c window at (top, left), rescaled
        return affine_resample(x, c / h, c / w, (2 * top + c - h) / h, (2 * left + c - w) / w, padding="border")


@attrs.frozen
class MixupInference(InputTransformDefense):
    """MI-OL — Pang et al., "Mixup inference: better exploiting mixup to defend adversarial
    attacks", ICLR 2020: x̃ = λ_OL·x + (1 − λ_OL)·x_s with x_s a clean training sample whose
    label differs from x's predicted label ("other labels"), predictions averaged over
    executions (paper 004: 30; λ_OL 0.5 for mixup models, 0.6 for IAT models)."""

    name: ClassVar[str] = "mixup-inference"
    per_sample_streams: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    lam: float = attrs.field(default=0.5, validator=_check_scales)

    def transform(self, x, model, generator, context):
        pool_x, pool_y = context.get("train_x"), context.get("train_y")
        if pool_x is None:
            raise ValueError("mixup-inference needs clean samples (context['train_x'])")
        with torch.no_grad():
            pred = model(x).argmax(1)
        # draw a pool index per sample, redrawing those that landed on the predicted class
        idx = streams.integers(generator, 0, len(pool_y), (len(x),), pool_y.device)
        for _ in range(20):
            bad = pool_y[idx] == pred.to(pool_y.device)
            if not bad.any():
                break
            redraw = bad.nonzero().flatten()
            idx[bad] = streams.integers(streams.subset(generator, redraw), 0, len(pool_y), (len(redraw),), pool_y.device)
        xs = as_float(pool_x[idx]).to(x)
        return self.lam * x + (1 - self.lam) * xs


@attrs.frozen
class GaussianNoise(InputTransformDefense):
    """Random Gaussian noise at inference (Tabacof & Valle 2016), one of paper 004's Table 3
    baselines in front of Guo et al.'s crop-rescale: x + N(0, σ²) per pixel, clipped to [0, 1].
    The paper does not give σ; the default 0.05 is this library's choice (change it with ``sigma``)."""

    name: ClassVar[str] = "gaussian-noise"
    per_sample_streams: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    sigma: float = attrs.field(default=0.05, validator=attrs.validators.gt(0))

    def transform(self, x, model, generator, context):
        noise = streams.normal(generator, x.shape, x)
        return (x + self.sigma * noise).clamp(0, 1)


@attrs.frozen
class RandomRotation(InputTransformDefense):
    """Random rotation at inference, paper 004's other Table 3 baseline before Guo et al.'s: each
    image turned about its centre by an angle drawn uniformly from [−max_degrees, max_degrees]
    (bilinear, zeros outside). The paper does not give the range; the default 15° is this
    library's choice."""

    name: ClassVar[str] = "random-rotation"
    per_sample_streams: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    max_degrees: float = attrs.field(default=15.0, validator=[attrs.validators.gt(0), attrs.validators.le(180)])

    def transform(self, x, model, generator, context):
        angle = (streams.uniform(generator, (x.shape[0],)).cpu() * 2 - 1) * self.max_degrees * torch.pi / 180
        cos, sin = angle.cos().to(x), angle.sin().to(x)
        theta = torch.zeros(x.shape[0], 2, 3, dtype=x.dtype, device=x.device)
        theta[:, 0, 0], theta[:, 0, 1], theta[:, 1, 0], theta[:, 1, 1] = cos, -sin, sin, cos
        grid = F.affine_grid(theta, list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


DEFENSES = [RandomResizePad, CropRescale, MixupInference, GaussianNoise, RandomRotation]
