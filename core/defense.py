"""Compose inference defences into one classifier, for evaluation and for adaptive attacks.

A chain is applied in order. Input transforms (``InputTransformDefense``) each see the
*undefended* model, so a defence such as counteract (paper 004) uses the base model's
gradients even when it sits inside a chain. Randomized chains return the log of the mean
softmax over ``repeats`` draws; under attack (``eot`` draws) that is Expectation over
Transformation, and steps marked non-differentiable pass gradients straight through (BPDA).
On CUDA the draws of a batch run as one pass (the batch repeated along its first axis, every
copy drawing its own randomness), split into several passes above ``max_batch`` images or when
the device runs out of memory; on a CPU one draw per pass is faster. Transforms that draw through
``advx.streams`` get draws keyed by (seed, the image's content, the draw's number): an image gets
the same draws in any batch and any split of the draws into passes. Evaluation takes draws
0 … repeats − 1; under attack every query takes new draws (``advx.streams.DrawLedger``), so an
attack's own EOT over calls averages over different draws.
"""

from __future__ import annotations

from typing import Any, ClassVar, Sequence

import attrs
import torch
from torch import nn

from .streams import DrawLedger, SampleStreams, draw_streams


@attrs.frozen
class InputTransformDefense:
    """A defence that rewrites the input before the classifier sees it.

    ``randomized`` defences are averaged over ``repeats`` draws and attacked with EOT;
    ``differentiable = False`` ones are passed straight through on the backward pass (BPDA)
    when attacked adaptively. ``transform`` receives the *undefended* model and a ``context``
    dict: ``train_x``/``train_y`` (clean training data on the device, e.g. MI-OL's mixing pool)
    and ``num_classes``.
    """

    name: ClassVar[str] = "input-transform"
    randomized: ClassVar[bool] = False
    differentiable: ClassVar[bool] = True
    #: True for defences that optimise their input at inference time (counteract): the sanity
    #: checks then ask for adaptive and gradient-free numbers beside the oblivious ones.
    optimizes_input: ClassVar[bool] = False
    #: True when ``transform`` draws through ``advx.streams``: it is then given per-sample streams
    #: keyed by each input's content, so an image gets the same draws in any batch (see AttackBase).
    per_sample_streams: ClassVar[bool] = False

    def transform(self, x: torch.Tensor, model: nn.Module, generator: torch.Generator | None,
                  context: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def wrap(self, model: nn.Module, context: dict[str, Any] | None = None) -> nn.Module:
        return DefendedClassifier(model, [self], repeats=1, context=context)


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
        self.seed = seed
        self.generator = torch.Generator().manual_seed(seed)
        self.ledger = DrawLedger()
        self.context = dict(context or {})
        self.train(model.training)  # take the wrapped model's mode (a new Module says training=True)

    @property
    def randomized(self) -> bool:
        return any(getattr(t, "randomized", False) for t in self.transforms)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.generator.manual_seed(seed)
        self.ledger.reset()

    def apply_transforms(self, x: torch.Tensor, streams: SampleStreams | None = None) -> torch.Tensor:
        """The chain on ``x``; ``streams`` (one per row of ``x``) feeds the transforms that draw
        per sample, the others share this wrapper's generator."""
        if streams is None and self.randomized:
            seed, first = self.ledger.starts(x, self.seed, 1, self.attacking)
            streams = draw_streams(x, seed, first, 1)
        for t in self.transforms:
            g = streams if getattr(t, "per_sample_streams", False) else self.generator
            out = t.transform(x, self.model, g, self.context)
            if self.attacking and not getattr(t, "differentiable", True):
                out = x + (out - x).detach()  # BPDA: identity on the backward pass
            x = out
        return x

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.transforms:
            return self.model(x)
        draws = (self.eot if self.attacking else self.repeats) if self.randomized else 1
        if draws == 1:
            return self.model(self.apply_transforms(x))
        seed, first = self.ledger.starts(x, self.seed, draws, self.attacking)
        probs, done = None, 0
        limit = self.max_batch or (4096 if x.is_cuda else len(x))
        per_pass = max(1, min(draws, limit // max(1, len(x))))
        while done < draws:
            k = min(per_pass, draws - done)
            try:
                p = self._mean_probs(x, seed, first + done, k)
            except torch.cuda.OutOfMemoryError:
                if per_pass == 1:
                    raise
                per_pass = max(1, per_pass // 2)  # memory asks for fewer copies per pass
                continue
            probs = p * k if probs is None else probs + p * k
            done += k
        return torch.log(probs / draws + 1e-12)

    #: at most this many images in one pass of the draws (the batch times the draws it holds).
    #: None: 4096 on CUDA, where one wide pass beats many narrow ones; on a CPU one draw per pass,
    #: which runs at 1.06x the forward+backward limit while 20 draws per pass lose the cache and
    #: run at 1.8x (measured: benchmarks/results/eot_batching.json).
    max_batch: int | None = None

    def _mean_probs(self, x: torch.Tensor, seed: int, start: int | torch.Tensor, k: int) -> torch.Tensor:
        """Mean softmax over draws ``start … start + k − 1`` from one pass: x repeated k times along
        the batch, each copy transformed with its own draw (keyed by the image and the draw)."""
        xr = x.repeat(k, *([1] * (x.ndim - 1))) if k > 1 else x
        p = torch.softmax(self.model(self.apply_transforms(xr, draw_streams(x, seed, start, k))).float(), dim=1)
        return p.view(k, len(x), -1).mean(0)


def is_input_transform(d: object) -> bool:
    """An input-rewriting defence: an InputTransformDefense, or any object with a ``transform``
    method and no ``wrap`` of its own (its flags default to deterministic and differentiable)."""
    return isinstance(d, InputTransformDefense) or (callable(getattr(d, "transform", None))
                                                    and not callable(getattr(d, "wrap", None)))


def build_defended(model: nn.Module, chain: Sequence[object], *, repeats: int = 1, eot: int = 1,
                   seed: int = 0, context: dict[str, Any] | None = None) -> nn.Module:
    """Apply a chain of defences in order; consecutive input transforms share one wrapper."""
    pending: list[InputTransformDefense] = []
    current = model
    for d in chain:
        if is_input_transform(d):
            pending.append(d)
            continue
        if pending:
            current = DefendedClassifier(current, pending, repeats=repeats, eot=eot, seed=seed, context=context)
            pending = []
        current = d.wrap(current, context)
    if pending or current is model:
        current = DefendedClassifier(current, pending, repeats=repeats, eot=eot, seed=seed, context=context)
    return current


def set_attacking(module: nn.Module, flag: bool) -> None:
    """Switch every randomized part of ``module`` (a DefendedClassifier, or any module with an
    ``attacking`` attribute) between evaluation draws and attack draws."""
    for m in module.modules():
        if isinstance(m, DefendedClassifier) or hasattr(m, "attacking"):
            m.attacking = flag


def reseed(module: nn.Module, seed: int) -> None:
    """Reseed every randomized part of a defended pipeline: each module with a ``reseed(seed)``
    method (DefendedClassifier, or a whole-model defence's wrapper that draws its own randomness)."""
    for i, m in enumerate(m for m in module.modules() if callable(getattr(m, "reseed", None))):
        m.reseed(seed + 7919 * i)
