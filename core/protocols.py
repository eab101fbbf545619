"""The five protocols every advx component follows, and small base classes that do the
bookkeeping so a plugin only writes the technique.

Pixel range is [0, 1] everywhere; models normalise inside ``forward``. Components are attrs
classes with ``name: ClassVar[str]``; their fields are hyper-parameters. Models and tensors
are passed to methods, never stored on a component.

Model
    ``build(num_classes, in_channels) -> nn.Module`` on a registered factory. The module maps
    NCHW images in [0, 1] to logits and may carry ``feature_layers: tuple[str, ...]``, dotted
    names (``model.get_submodule``) that feature-level techniques hook by default.
Attack
    The core calls ``attack(model, x, y, *, target=None, generator=None, eps=None) -> x_adv``:
    ``x`` in [0, 1] (N x C x H x W), ``y`` (N,) int labels, ``target`` (N,) classes to reach or
    None, ``generator`` the source of every random draw, ``eps`` None (use the field) or a
    float or (N,) tensor of per-sample budgets. An attack that draws through ``advx.streams``
    (``uniform``/``normal``/``integers``, ``subset`` for the rows still running) and sets
    ``per_sample_streams = True`` gets per-sample streams from the evaluator (an
    ``advx.streams.SampleStreams``): each sample's draws then depend on neither its batch nor
    its batch-mates; otherwise ``generator`` is a ``torch.Generator`` seeded per batch. The
    evaluator checks every output against the attack's declared ``norm``, ``eps`` and ``bounds``
    and stores no number for an attack whose points leave them. Batched, stateless, device-agnostic, never
    mutating ``x``, leaving the model's mode and ``requires_grad`` flags as found. Subclass
    :class:`AttackBase` and write ``perturb(model, x, y, *, target, generator, eps)`` (``eps``
    arrives as N x 1 x 1 x 1): the base class copies the input, freezes parameters, clamps the
    result to the pixel ``bounds`` and detaches it. It does **not** project onto the eps-ball:
    ``perturb`` keeps its own threat model (for linf, ``torch.min(torch.max(x_adv, x - eps), x + eps)``).
    Class flags the evaluator reads: ``gradient_free`` (runs in the black-box threat model), ``supports_target``,
    ``minimal`` (a minimal-norm attack: it may leave any ball; without an eps it is its own
    "unbounded" worst-case group, and with one, or with ``budget`` in its ``[[attack]]`` table, a
    point beyond the budget counts as no success there), ``eot`` (gradients averaged over that
    many queries of a randomized pipeline: each query takes new draws). An attack that keeps
    per-sample records overrides ``perturb_logged(model, x, y, *, target, generator, eps)`` to
    return them beside the batch (length-N tensors the evaluator stores; ``skipped_log`` gives the
    value for samples it does not attack, ``members`` an ensemble's member names in order).
TrainingAugmentation
    Hooks the trainer calls, each optional (subclass :class:`AugmentationBase`, which supplies
    no-ops; a class with none of them is refused at registration):
    ``adapt_model(model, info) -> nn.Module | None`` before training *and* before a cached
    checkpoint loads (change the architecture, e.g. insert fixers; ``info`` holds
    ``num_classes``, ``in_channels``, ``input_shape``, ``feature_layers``);
    ``setup(ctx)`` (freeze, add hooks, precompute); ``augment(batch, ctx) -> Batch`` per batch
    (new inputs, soft labels: ``batch.y`` is N x C, rows sum to 1); ``loss(model, batch, ctx) ->
    Tensor | None`` (a different objective; the last non-None in the recipe wins);
    ``teardown(ctx)`` (remove training-only hooks). ``ctx`` is an ``advx.training.TrainContext``:
    ``model``, ``x_train``/``y_train`` (may be replaced in ``setup``), ``num_classes``,
    ``device``, ``settings``, ``seed``, ``registry``, ``generator``, ``criterion``,
    ``feature_layers``, ``cache_dir``, ``data_augment`` (what the data pipeline already did to
    each batch: "none" or an image augmentation's name), ``epoch``, ``step`` and ``state`` (a dict
    the recipe shares). An attack a recipe crafts with is built from its ``attack``/``params``
    fields and checked before any training. Test one with
    ``advx.testing.check_augmentation(aug, ctx, batch)``. An *image augmentation* (subclass
    ``advx.api.ImageAugmentation``) writes ``augment_images(x, generator) -> x`` instead; named in
    ``[data] augment`` (or a variant's ``data_augment``) the trainer runs it on every batch before
    the recipe, drawing from the trainer's generator.
InferenceDefense
    ``wrap(model, context) -> nn.Module``, the defended classifier; ``context`` (below) lets a
    defence fit something to clean training data when it is built (the distribution classifier
    trains on transformed training images and caches it under ``cache_dir``), and a wrapper that
    draws its own randomness gives itself a ``reseed(seed)`` method so each evaluation chunk is
    reproducible (and ``averages_draws = N`` if every call averages N draws: that is EOT built
    in). Input-transform defences subclass
    :class:`InputTransformDefense` and write ``transform(x, model, generator, context) -> x'``;
    the core chains them, gives each the *undefended* model, averages probabilities over
    ``repeats`` draws and, in adaptive attacks, differentiates through them — or, for a class
    with ``differentiable = False`` (a step that breaks the graph: rounding, JPEG, an inner
    optimisation), passes the gradient straight through (BPDA); a defence that breaks the graph
    without saying so is refused when an adaptive cell starts, naming it and its file.
    ``randomized = True`` asks for EOT over ``eot`` draws and for ``repeats`` (draw through
    ``advx.streams`` with ``per_sample_streams = True``: evaluation draws are fixed per image, and
    under attack each query takes new ones, so EOT averages); ``optimizes_input = True`` (counteract) makes the
    sanity checks ask for adaptive and gradient-free numbers. ``context`` holds ``train_x``,
    ``train_y`` (clean training data on the device), ``num_classes``, ``train_index`` (the
    experiment's training split; ``advx.api.training_subset`` gives a variant's ``train_fraction``
    of it), ``seed`` and ``cache_dir`` (where fitted parts may be cached).
Dataset
    ``load() -> DataBundle`` of [0, 1] NCHW tensors (train and test split, ``num_classes``).
Evaluator
    ``evaluate(results) -> list[MetricTable]`` over an :class:`advx.evaluation.results.RunResults`.

What the core calls and reads on each kind is stated once, in :mod:`advx.contract`
(``SIGNATURES``, ``ATTRIBUTES``, ``REQUIRED``): the registry's conformance checks derive from it,
``advx describe`` shows an attack's ``norm`` from it, and tests fail when this text, the base
classes, the registry's tutorial, the hook specifications or the README disagree with it, or
when the core reads a name it does not declare.
"""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import torch
from torch import nn

Bounds = tuple[float, float]

from advx.contract import CONTRACT, DECLARED  # noqa: E402,F401  (the table; torch-free for the catalog)
from advx.defense import InputTransformDefense  # noqa: E402,F401  (lives beside DefendedClassifier, which its wrap builds)


# --------------------------------------------------------------------------- attacks
class frozen_params:
    """Context manager: eval mode, parameters not requiring grad; restores both on exit."""

    def __init__(self, model: nn.Module) -> None:
        self.model = model

    def __enter__(self) -> nn.Module:
        self.training = self.model.training
        self.flags = [p.requires_grad for p in self.model.parameters()]
        self.model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        return self.model

    def __exit__(self, *exc: object) -> None:
        for p, flag in zip(self.model.parameters(), self.flags):
            p.requires_grad_(flag)
        self.model.train(self.training)


def per_sample(value: float | torch.Tensor, x: torch.Tensor) -> torch.Tensor:
    """A scalar or (N,) tensor as an (N, 1, 1, ...) tensor broadcastable against ``x``."""
    if isinstance(value, (int, float)):  # a fill on the device: no host-to-device copy, so no stream sync
        t = torch.full((x.shape[0],), float(value), dtype=x.dtype, device=x.device)
    else:
        t = torch.as_tensor(value, dtype=x.dtype, device=x.device)
    if t.ndim == 0:
        t = t.expand(x.shape[0])
    return t.reshape(-1, *([1] * (x.ndim - 1)))


@attrs.frozen
class AttackBase:
    """Bookkeeping shared by every attack: mode, grads, bounds, copying, seeding.

    Subclasses implement ``perturb(model, x, y, *, target, generator, eps)`` and return a tensor
    the same shape as ``x`` inside their own threat model (this class does not project onto the
    eps-ball); ``__call__`` clamps it to the pixel ``bounds`` and hands back a detached tensor.
    """

    name: ClassVar[str] = "attack-base"
    norm: ClassVar[str] = "linf"
    #: True for minimal-norm attacks (CW, DeepFool) that have no eps budget.
    minimal: ClassVar[bool] = False
    #: True for attacks that only query outputs (Square, noise): the evaluator's ``black-box``
    #: threat model runs these against the whole defended pipeline, forward passes only.
    gradient_free: ClassVar[bool] = False
    supports_target: ClassVar[bool] = True
    #: True when every draw goes through ``advx.streams`` (``uniform``/``normal``/``integers``/
    #: ``subset``): the evaluator then passes a per-sample ``SampleStreams`` as ``generator`` and a
    #: sample's numbers do not depend on its batch. False (the default for plugins): ``generator``
    #: is a ``torch.Generator`` seeded per batch.
    per_sample_streams: ClassVar[bool] = False
    bounds: Bounds = attrs.field(default=(0.0, 1.0), converter=tuple)

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                 target: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 eps: float | torch.Tensor | None = None) -> torch.Tensor:
        """Attack ``model`` at (``x``, ``y``); ``target`` makes it targeted, ``eps`` (a float or an
        (N,) tensor) overrides the budget per sample, ``generator`` seeds its randomness."""
        return self.attack_with_log(model, x, y, target=target, generator=generator, eps=eps)[0]

    def attack_with_log(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *,
                        target: torch.Tensor | None = None, generator: torch.Generator | None = None,
                        eps: float | torch.Tensor | None = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """As ``__call__``, plus the attack's per-sample records (length-N tensors, e.g. AutoAttack's
        ``broken_by``); the evaluator stores them beside the cell's results."""
        if target is not None and not self.supports_target:
            raise ValueError(f"attack {self.name!r} has no targeted variant")
        x0 = x.detach().clone()
        budget = per_sample(getattr(self, "eps", 0.0) if eps is None else eps, x0)
        with frozen_params(model), torch.enable_grad():
            x_adv, log = self.perturb_logged(model, x0, y.detach(), target=target, generator=generator, eps=budget)
        return x_adv.detach().clamp(*self.bounds), {k: v.detach() for k, v in log.items()}

    def perturb_logged(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None,
                       generator: torch.Generator | None, eps: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """``perturb`` and its per-sample records; override to record something (default: none)."""
        return self.perturb(model, x, y, target=target, generator=generator, eps=eps), {}

    def perturb(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, target: torch.Tensor | None,
                generator: torch.Generator | None, eps: torch.Tensor) -> torch.Tensor:
        """Return the adversarial batch (``eps`` is the per-sample budget as N x 1 x 1 x 1)."""
        raise NotImplementedError


# --------------------------------------------------------------------------- training
@attrs.define
class Batch:
    """One training batch: inputs, soft labels (N x C, rows sum to 1) and dataset indices."""

    x: torch.Tensor
    y: torch.Tensor
    index: torch.Tensor

    @property
    def hard(self) -> torch.Tensor:
        return self.y.argmax(1)


@attrs.define
class AugmentationBase:
    """No-op hooks; subclass and override the ones the technique needs."""

    name: ClassVar[str] = "augmentation-base"

    def adapt_model(self, model: nn.Module, info: dict[str, Any]) -> nn.Module | None:
        return None

    def setup(self, ctx: Any) -> None:
        return None

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        return batch

    def loss(self, model: nn.Module, batch: Batch, ctx: Any) -> torch.Tensor | None:
        return None

    def teardown(self, ctx: Any) -> None:
        return None
