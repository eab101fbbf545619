"""Compose inference defences into one classifier, for evaluation and for adaptive attacks.

A chain is applied in order. Input transforms (``InputTransformDefense``) each see the
*undefended* model, so a defence such as counteract (paper 004) uses the base model's
gradients even when it sits inside a chain. Randomized chains return the log of the mean
softmax over ``repeats`` draws; under attack (``eot`` draws) that is Expectation over
Transformation, and steps marked non-differentiable pass gradients straight through (BPDA).
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import nn

from .protocols import InputTransformDefense


class DefendedClassifier(nn.Module):
    """``model`` behind a chain of input transforms.

    :param repeats: draws averaged at evaluation time (randomized chains only).
    :param eot: draws averaged while being attacked (``attacking = True``).
    :param seed: seed of the defence's own generator (``reseed`` resets it per chunk).
    """

    def __init__(self, model: nn.Module, transforms: Sequence[InputTransformDefense], *, repeats: int = 1,
                 eot: int = 1, seed: int = 0, context: dict[str, Any] | None = None) -> None:
        super().__init__()
        self.model = model
        self.transforms = list(transforms)
        self.repeats = max(1, int(repeats))
        self.eot = max(1, int(eot))
        self.attacking = False
        self.generator = torch.Generator().manual_seed(seed)
        self.context = dict(context or {})
        self.train(model.training)  # take the wrapped model's mode (a new Module says training=True)

    @property
    def randomized(self) -> bool:
        return any(t.randomized for t in self.transforms)

    def reseed(self, seed: int) -> None:
        self.generator.manual_seed(seed)

    def apply_transforms(self, x: torch.Tensor) -> torch.Tensor:
        for t in self.transforms:
            out = t.transform(x, self.model, self.generator, self.context)
            if self.attacking and not t.differentiable:
                out = x + (out - x).detach()  # BPDA: identity on the backward pass
            x = out
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transforms:
            return self.model(x)
        draws = (self.eot if self.attacking else self.repeats) if self.randomized else 1
        if draws == 1:
            return self.model(self.apply_transforms(x))
        probs = None
        for _ in range(draws):
            p = torch.softmax(self.model(self.apply_transforms(x)).float(), dim=1)
            probs = p if probs is None else probs + p
        return torch.log(probs / draws + 1e-12)


def build_defended(model: nn.Module, chain: Sequence[object], *, repeats: int = 1, eot: int = 1,
                   seed: int = 0, context: dict[str, Any] | None = None) -> nn.Module:
    """Apply a chain of defences in order; consecutive input transforms share one wrapper."""
    pending: list[InputTransformDefense] = []
    current = model
    for d in chain:
        if isinstance(d, InputTransformDefense):
            pending.append(d)
            continue
        if pending:
            current = DefendedClassifier(current, pending, repeats=repeats, eot=eot, seed=seed, context=context)
            pending = []
        current = d.wrap(current)
    if pending or current is model:
        current = DefendedClassifier(current, pending, repeats=repeats, eot=eot, seed=seed, context=context)
    return current


def set_attacking(module: nn.Module, flag: bool) -> None:
    """Switch every DefendedClassifier inside ``module`` between evaluation and attack draws."""
    for m in module.modules():
        if isinstance(m, DefendedClassifier):
            m.attacking = flag


def reseed(module: nn.Module, seed: int) -> None:
    for i, m in enumerate(m for m in module.modules() if isinstance(m, DefendedClassifier)):
        m.reseed(seed + 7919 * i)
