"""Paper-specific adversarial training on top of advx's PGD training
(``advx.training.adversarial``): partial PGD (paper 001 Section 3.4.2) and interpolated
adversarial training (IAT, Lamb et al. 2019; paper 004)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from advx.api import AdversarialTraining, Batch

from .mixing import beta, mix


@attrs.define
class PartialPGD(AdversarialTraining):
    """Partial PGD, paper 001 Section 3.4.2 (Algorithm 2): attack the batch, then mix the clean
    batch with its own PGD version, x̃ = λx + (1−λ)x_adv, λ ~ Beta(α, α); labels unchanged."""

    name: ClassVar[str] = "partial-pgd"
    alpha: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        x_adv = self.adversarial(ctx.model, batch.x, batch.y.argmax(1), ctx)
        lam = beta(self.alpha, ctx.generator)
        ctx.state["partial_pgd_lambda"] = lam
        return Batch(lam * batch.x + (1 - lam) * x_adv, batch.y, batch.index)


@attrs.define
class InterpolatedAdversarialTraining(AdversarialTraining):
    """Interpolated adversarial training (IAT) — Lamb et al., "Interpolated adversarial
    training", AISec 2019; how paper 004 trains its models: loss = ½·[mixup loss on the clean
    batch + mixup loss on its adversarial batch] (1:1), λ ~ Beta(α, α) with α = 1, adversarial
    examples by untargeted PGD-10 (eps 8/255, step 2/255) on the clean batch."""

    name: ClassVar[str] = "iat"
    params: dict[str, Any] = attrs.field(factory=lambda: {"eps": 8 / 255, "alpha": 2 / 255, "steps": 10})
    alpha: float = attrs.field(default=1.0, validator=attrs.validators.gt(0))

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        return batch

    def loss(self, model: nn.Module, batch: Batch, ctx: Any) -> torch.Tensor:
        x_adv = self.adversarial(model, batch.x, batch.y.argmax(1), ctx)
        total = 0.0
        for x in (batch.x, x_adv):
            lam = beta(self.alpha, ctx.generator)
            perm = torch.randperm(len(x), generator=ctx.generator).to(x.device)
            total = total + ctx.criterion(model(mix(x, perm, lam)), mix(batch.y, perm, lam))
        return total / 2
