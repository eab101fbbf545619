"""The budget a cell's adversarial points answer to: one rule, decided once per attack.

An attack declares ``norm`` and ``eps`` and pixel ``bounds``. A bounded attack's every point must lie
in its ball: ``AttackBase`` clamps to the bounds but never projects onto the ball, so a plugin that
steps outside would otherwise get a robust-accuracy number like any other, and :meth:`Budget.check`
refuses it. A minimal-norm attack (DeepFool, CW: ``minimal = True``) searches for the smallest
perturbation and may leave any ball: without an eps it is "unbounded", a worst case of its own; with
one (its own ``eps``, or ``budget`` in its ``[[attack]]`` table) its success counts only where the
point it found fits, and a point beyond is replaced by the clean input before it is scored
(:meth:`Budget.enforce`), so every stored perturbation answers to the cell's budget.
"""

from __future__ import annotations

from typing import Any

import math

import attrs
import torch

from advx.errors import ConfigError, ThreatModelError

#: slack on the ball and the bounds: float32 rounding of eps and of x + delta
ATOL, RTOL = 1e-5, 1e-4
NORMS = ("linf", "l2", "l1")


def format_eps(eps: float) -> str:
    """0.3 or 0.05 as written; 8/255 for multiples of 1/255 with no short decimal (how papers
    write image budgets)."""
    k = eps * 255
    short = f"{eps:g}"
    if len(short) <= 5 or not (0 < eps < 1 and abs(k - round(k)) < 1e-6):
        return short
    return f"{round(k)}/255"


def perturbation_sizes(delta: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample ``norm`` of a batch of perturbations (N,)."""
    flat = delta.flatten(1).float()
    return flat.abs().amax(1) if norm == "linf" else flat.norm(dim=1) if norm == "l2" else flat.abs().sum(1)


def _number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


@attrs.frozen
class Budget:
    """``norm`` ball of radius ``eps`` (None: unbounded); ``minimal``: the attack minimises the norm
    instead of staying inside the ball."""

    norm: str = "linf"
    eps: float | None = None
    minimal: bool = False

    @classmethod
    def of(cls, attack: Any, budget: float | None = None) -> "Budget":
        """The budget of ``attack``; ``budget`` (a minimal-norm attack's ``[[attack]] budget``)
        bounds an attack that has no eps of its own."""
        eps = getattr(attack, "eps", None)
        eps = float(eps) if _number(eps) else None
        if budget is not None:
            eps = float(budget)
        return cls(str(getattr(attack, "norm", "linf")), eps, bool(getattr(attack, "minimal", False)))

    @property
    def bounded(self) -> bool:
        return self.eps is not None

    @property
    def label(self) -> str:
        """How tables and the store name it: "linf 8/255", or "unbounded"."""
        return f"{self.norm} {format_eps(self.eps)}" if self.bounded else "unbounded"

    def fits(self, x: torch.Tensor, x_adv: torch.Tensor) -> torch.Tensor:
        """Which rows of ``x_adv`` lie in the ball (all of them when unbounded)."""
        if not self.bounded:
            return torch.ones(len(x), dtype=torch.bool, device=x.device)
        return perturbation_sizes(x_adv - x, self.norm) <= self.eps * (1 + RTOL) + ATOL

    def check(self, label: str, bounds: tuple[float, float], x: torch.Tensor, x_adv: torch.Tensor) -> None:
        """Raise :class:`ThreatModelError` naming ``label`` and how many samples left the threat
        model: wrong shape, NaN, outside the pixel bounds, or (bounded, not minimal) outside the ball."""
        if x_adv.shape != x.shape:
            raise ThreatModelError(f"attack {label!r} returned shape {tuple(x_adv.shape)} for inputs of shape "
                                   f"{tuple(x.shape)}; no number is stored")
        lo, hi = bounds
        bad_value = ~torch.isfinite(x_adv).flatten(1).all(1)
        outside = ((x_adv < lo - ATOL) | (x_adv > hi + ATOL)).flatten(1).any(1)
        problems = []
        if bad_value.any():
            problems.append(f"{int(bad_value.sum())} with NaN or infinite pixels")
        if outside.any():
            problems.append(f"{int(outside.sum())} outside the pixel bounds [{lo}, {hi}]")
        if self.bounded and not self.minimal:
            over = ~self.fits(x, x_adv)
            if over.any():
                largest = float(perturbation_sizes(x_adv - x, self.norm).max())
                problems.append(f"{int(over.sum())} outside its {self.norm} ball of eps {self.eps:.6g} "
                                f"(largest {self.norm} perturbation {largest:.6g})")
        if problems:
            raise ThreatModelError(f"attack {label!r}: of {len(x)} samples, " + "; ".join(problems)
                                   + "; its points break its own threat model, so no number is stored")

    def enforce(self, x: torch.Tensor, x_adv: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(points scored, which rows were beyond the budget): a minimal-norm attack's point beyond
        a bounded budget is no success within it, so the clean input stands in for it."""
        over = ~self.fits(x, x_adv)
        if not over.any():
            return x_adv, over
        return torch.where(over.view(-1, *([1] * (x.ndim - 1))), x, x_adv), over


def check_budget(attack: Any, where: str, image_shape: tuple[int, ...] | None = None,
                 budget: float | None = None) -> None:
    """Refuse a budget that cannot be meant: pixels are in [0, 1], so a linf eps of 1 or more
    allows any image at all (eps 8 was meant as 8/255), and an l2 eps beyond the image's diameter
    (sqrt of its pixel count) or an l1 eps beyond it (the pixel count) likewise. ``budget`` is a
    minimal-norm attack's ``[[attack]] budget``; on an attack with an eps of its own it is refused."""
    if budget is not None and not getattr(attack, "minimal", False):
        raise ConfigError(f"{where}.budget: only a minimal-norm attack (deepfool, cw) takes a budget; "
                          f"{getattr(attack, 'name', type(attack).__name__)!r} has its own eps: set eps instead")
    b = Budget.of(attack, budget)
    if not b.bounded:
        return
    eps, norm, key = b.eps, b.norm, "budget" if budget is not None else "eps"
    if norm == "linf" and eps >= 1:
        guess = f"{eps:g}/255" if eps <= 255 else "8/255"
        raise ConfigError(f"{where}.{key}: {eps:g} is a linf budget on [0, 1] pixels that allows any image; "
                          f"did you mean {guess}?")
    if norm in ("l2", "l1") and image_shape is not None:
        diameter = math.prod(image_shape) ** (0.5 if norm == "l2" else 1.0)
        if eps > diameter:
            raise ConfigError(f"{where}.{key}: an {norm} eps of {eps:g} is beyond the {norm} diameter {diameter:.4g} of "
                              f"[0, 1]^{'x'.join(map(str, image_shape))} images; did you mean {eps:g}/255?")
