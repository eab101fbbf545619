"""BatchOut — Subramanya, Mopuri & Babu, "BatchOut: Batch-level feature augmentation to improve
robustness to adversarial examples", ICVGIP 2018 (paper 002), Section 4 / Algorithm 1 and Eq. 5."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from advx.api import AugmentationBase


def batchout(h: torch.Tensor, eta: float, k: float, g: torch.Generator) -> torch.Tensor:
    """Algorithm 1: R ← m indices with replacement; d = h[R] − h; the first ⌊k·m⌉ samples become
    h + η·d. d is detached (stop-gradient): the next layer cannot learn to undo the shift."""
    m = h.shape[0]
    n = int(round(k * m))
    r = torch.randint(0, m, (m,), generator=g).to(h.device)
    d = (h[r] - h).detach()
    mask = torch.zeros(m, device=h.device, dtype=h.dtype)
    mask[:n] = 1
    return h + eta * mask.view(-1, *([1] * (h.ndim - 1))) * d


def feature_noise(h: torch.Tensor, eta: float, k: float, g: torch.Generator) -> torch.Tensor:
    """Paper 002 Eq. 5 baseline: x* = x + η·‖x‖₂·n/‖n‖₂, n ~ N(0, I), on the first ⌊k·m⌉ samples
    (a random direction of the same size BatchOut would use); detached like BatchOut."""
    m = h.shape[0]
    n_aug = int(round(k * m))
    noise = torch.randn(h.shape, generator=g).to(h)
    flat = lambda t: t.flatten(1).norm(dim=1).view(-1, *([1] * (h.ndim - 1)))  # noqa: E731
    shift = (eta * flat(h) * noise / (flat(noise) + 1e-12)).detach()
    mask = torch.zeros(m, device=h.device, dtype=h.dtype)
    mask[:n_aug] = 1
    return h + mask.view(-1, *([1] * (h.ndim - 1))) * shift


@attrs.define
class BatchOut(AugmentationBase):
    """BatchOut: at each named layer (pre-ReLU output, via a forward hook active only while the
    model is in training mode) move a fraction ``k`` of the batch towards random other samples
    of the batch by ``η``, with stop-gradient on the direction. η is fixed per layer (``eta``;
    paper's MNIST net: 0.05, 0.1, 0.1) or drawn per batch from U[0, N] (``eta_max``; paper's
    CIFAR net: N = 0.1 … 0.15). ``teardown`` removes the hooks: identity at inference.
    ``layers`` defaults to the model's ``feature_layers``; k = 0.5 (the paper's)."""

    name: ClassVar[str] = "batchout"
    layers: tuple[str, ...] = ()
    eta: tuple[float, ...] = ()
    eta_max: tuple[float, ...] = ()
    k: float = attrs.field(default=0.5, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    _handles: list = attrs.field(factory=list, init=False, repr=False)

    op = staticmethod(batchout)

    def _etas(self, n: int) -> list[tuple[str, float]]:
        if self.eta and self.eta_max:
            raise ValueError(f"{self.name}: give eta (fixed) or eta_max (uniform), not both")
        src, kind = (self.eta_max, "uniform") if self.eta_max else (self.eta or (0.1,), "fixed")
        values = list(src) * n if len(src) == 1 else list(src)
        if len(values) != n:
            raise ValueError(f"{self.name}: {len(src)} eta values for {n} layers")
        return [(kind, float(v)) for v in values]

    def setup(self, ctx: Any) -> None:
        layers = list(self.layers or ctx.feature_layers)
        if not layers:
            raise ValueError(f"{self.name}: the model declares no feature_layers; set layers = [...]")
        g = ctx.generator
        ctx.state.setdefault("batchout_eta", {})
        for name, (kind, value) in zip(layers, self._etas(len(layers))):
            module = ctx.model.get_submodule(name)

            def hook(mod: nn.Module, inputs: Any, out: torch.Tensor, name=name, kind=kind, value=value):
                if not mod.training:
                    return None
                eta = float(torch.rand(1, generator=g)) * value if kind == "uniform" else value
                ctx.state["batchout_eta"][name] = eta
                return self.op(out, eta, self.k, g)

            self._handles.append(module.register_forward_hook(hook))

    def teardown(self, ctx: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


@attrs.define
class FeatureNoise(BatchOut):
    """Gaussian feature-noise baseline of paper 002 (Eq. 5): the same placement, fraction k and
    η as BatchOut, but a random Gaussian direction scaled to η·‖x‖₂ instead of another sample."""

    name: ClassVar[str] = "feature-noise"
    op = staticmethod(feature_noise)
