"""Mixup, manifold mixup and soft labels — paper 001 (Lai, Jin, Lu), Sections 2.1 and 3.4.1."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
import torch
from torch import nn

from advx.api import AugmentationBase, Batch


def beta(alpha: float, g: torch.Generator) -> float:
    """λ ~ Beta(α, α), reproducible from the trainer's seeded generator."""
    seed = int(torch.randint(0, 2**62, (1,), generator=g))
    return float(np.random.default_rng(seed).beta(alpha, alpha))


def mix(t: torch.Tensor, perm: torch.Tensor, lam: float) -> torch.Tensor:
    return lam * t + (1 - lam) * t[perm]


@attrs.define
class Mixup(AugmentationBase):
    """mixup (Zhang et al. 2018) as paper 001 uses it: mix the batch with a shuffled copy of
    itself, x̃ = λx + (1−λ)x[π], ỹ = λy + (1−λ)y[π], λ ~ Beta(α, α) per batch (α = 1)."""

    name: ClassVar[str] = "mixup"
    alpha: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        lam = beta(self.alpha, ctx.generator)
        perm = torch.randperm(len(batch.x), generator=ctx.generator).to(batch.x.device)
        ctx.state["mixup"] = (lam, perm)
        return Batch(mix(batch.x, perm, lam), mix(batch.y, perm, lam), batch.index)


@attrs.define
class ManifoldMixup(AugmentationBase):
    """Manifold mixup (Verma et al. 2019) as in paper 001, Fig. 1: per batch pick one position
    uniformly from {input, after each feature layer} and mix the hidden states there (labels
    mixed with the same λ). The mixing runs in a forward hook that removes itself after the
    batch's forward pass; ``teardown`` removes any left over. Put it last in a recipe."""

    name: ClassVar[str] = "manifold-mixup"
    alpha: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))
    layers: tuple[str, ...] = ()
    include_input: bool = True
    _handles: list = attrs.field(factory=list, init=False, repr=False)

    def positions(self, ctx: Any) -> list[str]:
        layers = list(self.layers or ctx.feature_layers)
        if not layers:
            raise ValueError("manifold-mixup: the model declares no feature_layers; set layers = [...]")
        return (["input"] if self.include_input else []) + layers

    def setup(self, ctx: Any) -> None:
        for name in self.positions(ctx)[1 if self.include_input else 0:]:
            ctx.model.get_submodule(name)  # fail early on a wrong layer name

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        self.teardown(ctx)
        pos = self.positions(ctx)
        where = pos[int(torch.randint(len(pos), (1,), generator=ctx.generator))]
        lam = beta(self.alpha, ctx.generator)
        perm = torch.randperm(len(batch.x), generator=ctx.generator).to(batch.x.device)
        ctx.state["manifold_mixup"] = (where, lam, perm)
        if where == "input":
            return Batch(mix(batch.x, perm, lam), mix(batch.y, perm, lam), batch.index)

        def hook(module: nn.Module, inputs: Any, output: torch.Tensor) -> torch.Tensor:
            for h in self._handles:
                h.remove()
            self._handles.clear()
            ctx.state["manifold_mixup_fired"] = where
            return mix(output, perm, lam)

        self._handles.append(ctx.model.get_submodule(where).register_forward_hook(hook))
        return Batch(batch.x, mix(batch.y, perm, lam), batch.index)

    def teardown(self, ctx: Any) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()


@attrs.define
class SoftLabels(AugmentationBase):
    """Soft labels, paper 001 Section 3.4.1: zeros of the one-hot become σ and the one becomes
    1 − (N−1)σ (applied as y' = (1 − Nσ)·y + σ, which also keeps mixed labels summing to 1)."""

    name: ClassVar[str] = "soft-labels"
    sigma: float = attrs.field(default=0.005, validator=attrs.validators.ge(0))

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        n = batch.y.shape[1]
        if self.sigma * n >= 1:
            raise ValueError(f"soft-labels: sigma = {self.sigma} is too large for {n} classes (need sigma < 1/{n})")
        return Batch(batch.x, (1 - n * self.sigma) * batch.y + self.sigma, batch.index)
