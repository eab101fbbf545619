"""Threat models: what an attack crafts against and what its points are scored on, one class each.

A threat model is a registered component (``advx_register_threat_models``; ``advx list
threat-model``), named in ``evaluate.modes``. The planner asks each one which cells of the grid it
makes (:meth:`ThreatModel.cell_mode`); the runner asks it, chunk by chunk, for a cell's adversarial
points (:meth:`ThreatModel.adversarials`) and scores them itself, on the deployed pipeline with its
evaluation draws, the same way for every threat model. Each cell stores its own result; only the
per-sample worst case merges across threat models. ``stronger_than`` names the threat models whose
attacker knows less: a cell that leaves more samples robust than one of those, on the same attack,
is a failed attack, and the run warns and ``advx audit`` fails it (Tramèr et al., "On Adaptive
Attacks to Adversarial Example Defenses", NeurIPS 2020; Carlini et al. 2019, Section 4).

What a threat model may use of the runner (``runner`` below, an ``advx.evaluation.runner.CellRunner``):
``runner.cached(model_label, attack_label, s, e)`` — the attack's points on an undefended trained
model, crafted once and shared; ``runner.craft(cell, target, s, e, mask, purpose)`` — attack
``target`` (any module) on rows [s, e), counting its passes on the cell's model;
``runner.pipeline(cell)`` — the defended pipeline (``with attacked(pipeline)`` switches it to attack
draws and BPDA); ``runner.cfg`` — the experiment config.
"""

from __future__ import annotations

import contextlib
import inspect
from typing import Any, ClassVar, Iterator

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advx.defense import set_attacking
from advx.errors import ConfigError, DefenseError
from advx.protocols import frozen_params

Crafted = tuple[torch.Tensor, dict[str, np.ndarray], int, int]  # points, attack records, forwards, backwards


@contextlib.contextmanager
def attacked(pipeline: nn.Module) -> Iterator[nn.Module]:
    """The pipeline as an adaptive attacker sees it: attack draws (each query new, EOT) and
    straight-through gradients for steps marked ``differentiable = False`` (BPDA)."""
    set_attacking(pipeline, True)
    try:
        yield pipeline
    finally:
        set_attacking(pipeline, False)


class ThreatModel:
    """Base class: crafts on nothing. Subclasses set ``name``, ``crafts_on`` and ``stronger_than``
    and implement :meth:`adversarials`; :meth:`cell_mode`, :meth:`check_config` and
    :meth:`prepare` are optional."""

    name: ClassVar[str] = "threat-model"
    #: what the attack differentiates or queries (``advx describe threat-model NAME`` prints it)
    crafts_on: ClassVar[str] = ""
    #: what the points are scored on: the same for every threat model advx runs
    scored_on: ClassVar[str] = "the deployed pipeline with its evaluation draws (repeats)"
    #: threat models whose attacker knows less: this one must never leave more samples robust
    stronger_than: ClassVar[tuple[str, ...]] = ()
    #: True when the attack differentiates the defended pipeline (its EOT draws and BPDA apply)
    differentiates_pipeline: ClassVar[bool] = False

    def check_config(self, cfg: Any, attacks: dict[str, Any]) -> None:
        """Refuse, before anything trains, a config this threat model cannot run (``attacks``: the
        built attack objects by label)."""

    def cell_mode(self, *, gradient_free: bool, defended: bool, modes: tuple[str, ...]) -> str | None:
        """The threat model a cell of this attack on this pipeline is stored under: usually this
        one's name; another's where the two coincide (adaptive on the undefended pipeline is
        oblivious); None when this threat model makes no such cell."""
        return self.name

    def prepare(self, runner: Any, cell: Any) -> None:
        """Once before a cell's first chunk (e.g. check that the pipeline can be attacked so)."""

    def adversarials(self, runner: Any, cell: Any, s: int, e: int,
                     clean_ok: torch.Tensor) -> Crafted:
        raise NotImplementedError


@attrs.frozen
class Oblivious(ThreatModel):
    """The attacker knows the trained model, not the defence: points crafted on the undefended
    model once per (model, attack) and reused for every defence (Carlini & Wagner 2017's
    "zero-knowledge" setting; paper 004's Tables 1-2)."""

    name: ClassVar[str] = "oblivious"
    crafts_on: ClassVar[str] = "the undefended trained model (crafted once, reused for every defence)"

    def adversarials(self, runner, cell, s, e, clean_ok):
        return runner.cached(cell.cell.train, cell.cell.attack, s, e)


@attrs.frozen
class Adaptive(ThreatModel):
    """The attacker knows the whole pipeline: gradients through the defence, straight through the
    steps marked ``differentiable = False`` (BPDA, Athalye et al. 2018) and averaged over fresh draws
    of a randomized one (EOT: ``eot`` draws per call, and every call new draws). On the undefended
    pipeline it coincides with oblivious."""

    name: ClassVar[str] = "adaptive"
    crafts_on: ClassVar[str] = "the defended pipeline (BPDA through non-differentiable steps, EOT over its draws)"
    stronger_than: ClassVar[tuple[str, ...]] = ("oblivious", "transfer")
    differentiates_pipeline: ClassVar[bool] = True

    def cell_mode(self, *, gradient_free, defended, modes):
        if gradient_free and BlackBox.name in modes:
            return None  # querying the pipeline is what black-box does
        return self.name if defended else Oblivious.name  # undefended, the pipeline is the model

    def prepare(self, runner, cell):
        check_gradient(runner.pipeline(cell), cell, runner.models[cell.cell.train], runner.x[:2],
                       runner.defense_context)

    def adversarials(self, runner, cell, s, e, clean_ok):
        final = runner.deterministic(cell.cell.train, cell.cell.defense)  # scored on the pipeline it attacks
        with attacked(runner.pipeline(cell)) as target:
            return runner.craft(cell, target, s, e, clean_ok, "eot", final=final)


@attrs.frozen
class Transfer(ThreatModel):
    """The attacker knows neither the defence nor the weights: points crafted on another trained
    model (``evaluate.transfer_from``, e.g. paper 003's frozen base) and scored on every model and
    defence."""

    name: ClassVar[str] = "transfer"
    crafts_on: ClassVar[str] = "the trained model evaluate.transfer_from, undefended"

    def check_config(self, cfg, attacks):
        ev, labels = cfg.evaluate, [t.label for t in cfg.trains]
        if ev.transfer_from is None:
            raise ConfigError("evaluate.transfer_from: the 'transfer' mode needs the trained model to craft on, "
                              f"e.g. transfer_from = \"base\" (trained models: {', '.join(labels)})")
        if ev.transfer_from not in labels:
            raise ConfigError(f"evaluate.transfer_from: {ev.transfer_from!r} names no trained model; "
                              f"trained models: {', '.join(labels)}")

    def adversarials(self, runner, cell, s, e, clean_ok):
        return runner.cached(runner.cfg.evaluate.transfer_from, cell.cell.attack, s, e)


@attrs.frozen
class BlackBox(ThreatModel):
    """The attacker only queries the deployed pipeline, as evaluated (gradient-free attacks such as
    Square); the check on gradient masking (Croce & Hein 2020, Section 5)."""

    name: ClassVar[str] = "black-box"
    crafts_on: ClassVar[str] = "queries to the deployed pipeline (gradient-free attacks only)"
    stronger_than: ClassVar[tuple[str, ...]] = ("transfer",)

    def check_config(self, cfg, attacks):
        if not any(getattr(a, "gradient_free", False) for a in attacks.values()):
            raise ConfigError("evaluate.modes: 'black-box' runs gradient-free attacks only, and no [[attack]] is "
                              "one; add e.g. [[attack]] name = \"square\"")

    def cell_mode(self, *, gradient_free, defended, modes):
        if not gradient_free:
            return None
        # undefended, querying the pipeline is querying the model: the oblivious cell, if one runs
        return Oblivious.name if not defended and Oblivious.name in modes else self.name

    def adversarials(self, runner, cell, s, e, clean_ok):
        final = runner.deterministic(cell.cell.train, cell.cell.defense)
        return runner.craft(cell, runner.pipeline(cell), s, e, clean_ok, "queries", final=final)


THREAT_MODELS = [Oblivious, Adaptive, Transfer, BlackBox]


def where_defined(obj: Any) -> str:
    """``file:line`` of an object's class, for messages that send a reader to the code at fault."""
    cls = obj if isinstance(obj, type) else type(obj)
    try:
        return f"{inspect.getsourcefile(cls)}:{inspect.getsourcelines(cls)[1]}"
    except (OSError, TypeError):
        return cls.__module__


def input_gradient(pipeline: nn.Module, x: torch.Tensor,
                   y: torch.Tensor | None = None) -> tuple[torch.Tensor | None, str]:
    """The gradient of the CE loss (at labels ``y``, else the predictions) an adaptive attacker
    follows at ``x`` (attack draws, BPDA), or None and why not."""
    xg = x.clone().requires_grad_(True)
    # as an attack sees it: parameters frozen, so no weight gradient is built (and a compiled model
    # meets the graph the attacks already compiled)
    with attacked(pipeline), frozen_params(pipeline), torch.enable_grad():
        try:
            out = pipeline(xg).float()
            if not out.requires_grad:
                return None, "its output does not depend on the input through autograd"
            loss = F.cross_entropy(out, out.argmax(1) if y is None else y)
            grad = torch.autograd.grad(loss, xg, allow_unused=True)[0]
        except RuntimeError as exc:
            return None, str(exc).splitlines()[0]
    return grad, "" if grad is not None else "the input is not in its graph"


def check_gradient(pipeline: nn.Module, cell: Any, model: nn.Module, x: torch.Tensor,
                   context: dict[str, Any] | None = None) -> None:
    """Refuse, in one line, a pipeline an adaptive attack cannot differentiate: a defence that
    breaks the graph (``torch.no_grad``, ``.detach()``, a numpy round trip) without saying so with
    ``differentiable = False``, which would make the attack pass gradients straight through it
    (BPDA). The message names the defence at fault (each is tried alone) and its file."""
    from advx.defense import build_defended

    grad, why = input_gradient(pipeline, x)
    if grad is not None:
        return
    culprit = None
    for d in cell.defense.chain:
        alone = build_defended(model, [d], context=context)
        if getattr(d, "differentiable", True) and input_gradient(alone, x)[0] is None:
            culprit = d
            break
    name = getattr(culprit, "name", type(culprit).__name__) if culprit is not None else cell.cell.defense
    place = where_defined(culprit) if culprit is not None else "its chain"
    raise DefenseError(f"defence {name!r} ({place}) breaks the gradient of the adaptive attack on "
                       f"{cell.cell.train}/{cell.cell.defense} ({why}): declare differentiable = False on it "
                       "(BPDA passes the gradient straight through) or attack it with a gradient-free "
                       "attack in the black-box threat model")
