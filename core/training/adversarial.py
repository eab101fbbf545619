"""Adversarial training recipes every paper here builds on: Madry et al.'s PGD training and
Goodfellow et al.'s FGSM training. Paper-specific variants (partial PGD, IAT) subclass
``AdversarialTraining`` in their plugins."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import attrs
import torch
from torch import nn

from ..protocols import AugmentationBase, Batch


class _KeepTrainMode(nn.Module):
    """A view of ``model`` that ignores eval()/train(): attacks then run the model in whatever
    mode it is in (train mode during training: batch-norm batch statistics)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.inner = [model]  # a list, so the model is not registered as a child

    def train(self, mode: bool = True) -> "_KeepTrainMode":
        self.training = mode
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.inner[0](x)


@attrs.define
class AdversarialTraining(AugmentationBase):
    """PGD adversarial training — Madry et al. 2018, as paper 001 uses it: each batch is
    attacked against the *current* model and the result trained on. ``attack`` names any
    registered attack, ``params`` its parameters. ``mode``: 'replace' the batch, 'extend' it
    (clean + adversarial) or replace its first 'half' (Goodfellow et al.'s FGSM training, paper
    002's baseline). ``eval_mode`` (default true, as the papers do) attacks the model in eval
    mode; false keeps train mode (batch-norm batch statistics). ``eps_warmup`` (epochs, default 0
    = the papers' constant budget) ramps ``eps`` and ``alpha`` linearly from near 0 to their full
    values over that many epochs: a short schedule at a large budget (eps 0.3 from scratch) otherwise tends to
    collapse to a constant prediction, which paper 001 avoids with 800 epochs at lr 0.002.
    Paper 001: MNIST eps 0.3 step 0.1 40 it; CIFAR eps 8/255 step 2/255 7 it."""

    name: ClassVar[str] = "pgd-training"
    attack: str = "pgd"
    params: dict[str, Any] = attrs.field(factory=lambda: {"eps": 8 / 255, "alpha": 2 / 255, "steps": 7})
    mode: Literal["replace", "extend", "half"] = attrs.field(
        default="replace", validator=attrs.validators.in_(["replace", "extend", "half"]))
    eval_mode: bool = True
    eps_warmup: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    _attack: Any = attrs.field(default=None, init=False, repr=False)

    def setup(self, ctx: Any) -> None:
        self._attack = ctx.registry.create("attack", self.attack, self.params, where=f"{self.name}.attack")

    def budget_fraction(self, ctx: Any) -> float:
        """Fraction of the full eps used at the current training step (1 after the warm-up)."""
        steps_per_epoch = max(1, -(-len(ctx.x_train) // ctx.settings.batch_size))
        warm = self.eps_warmup * steps_per_epoch
        return 1.0 if ctx.step + 1 >= warm else (ctx.step + 1) / warm

    def adversarial(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, ctx: Any) -> torch.Tensor:
        target = model if self.eval_mode else _KeepTrainMode(model)
        attack, f = self._attack, self.budget_fraction(ctx)
        if f < 1.0:
            attack = attrs.evolve(attack, **{k: getattr(attack, k) * f for k in ("eps", "alpha")
                                              if getattr(attack, k, None) is not None})
        return attack(target, x, y, generator=ctx.generator)

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        hard = batch.y.argmax(1)
        if self.mode == "half":
            k = len(batch.x) // 2
            x = batch.x.clone()
            x[:k] = self.adversarial(ctx.model, batch.x[:k], hard[:k], ctx)
            return Batch(x, batch.y, batch.index)
        x_adv = self.adversarial(ctx.model, batch.x, hard, ctx)
        if self.mode == "extend":
            return Batch(torch.cat([batch.x, x_adv]), torch.cat([batch.y, batch.y]), torch.cat([batch.index] * 2))
        return Batch(x_adv, batch.y, batch.index)


@attrs.define
class FGSMTraining(AdversarialTraining):
    """FGSM adversarial training (Goodfellow et al. 2015), paper 002's baseline: half of each
    batch replaced by FGSM examples of the current model."""

    name: ClassVar[str] = "fgsm-training"
    attack: str = "fgsm"
    params: dict[str, Any] = attrs.field(factory=lambda: {"eps": 0.3})
    mode: Literal["replace", "extend", "half"] = "half"
