"""Check every attack's output against the threat model it declares, before any number is kept.

An attack declares ``norm`` and ``eps`` (a minimal-norm attack has no eps) and pixel ``bounds``;
``AttackBase`` clamps to the bounds but never projects onto the ball, so a plugin attack that
steps outside its ball would otherwise get a robust-accuracy number like any other. The check
allows a small float tolerance (an eps of 8/255 stored in float32, a projection in bf16).
"""

from __future__ import annotations

from typing import Any

import torch

from advx.errors import ThreatModelError

#: slack on the ball and the bounds: float32 rounding of eps and of x + delta
ATOL, RTOL = 1e-5, 1e-4


def check_threat_model(attack: Any, label: str, x: torch.Tensor, x_adv: torch.Tensor) -> None:
    """Raise :class:`ThreatModelError` naming ``label`` and how many samples left the threat model."""
    if x_adv.shape != x.shape:
        raise ThreatModelError(f"attack {label!r} returned shape {tuple(x_adv.shape)} for inputs of shape "
                               f"{tuple(x.shape)}; no number is stored")
    lo, hi = getattr(attack, "bounds", (0.0, 1.0))
    bad_value = ~torch.isfinite(x_adv).flatten(1).all(1)
    outside = ((x_adv < lo - ATOL) | (x_adv > hi + ATOL)).flatten(1).any(1)
    problems = []
    if bad_value.any():
        problems.append(f"{int(bad_value.sum())} with NaN or infinite pixels")
    if outside.any():
        problems.append(f"{int(outside.sum())} outside the pixel bounds [{lo}, {hi}]")
    eps = getattr(attack, "eps", None)
    if isinstance(eps, (int, float)) and not isinstance(eps, bool) and not getattr(attack, "minimal", False):
        norm = getattr(attack, "norm", "linf")
        delta = (x_adv - x).flatten(1).float()
        size = delta.abs().amax(1) if norm == "linf" else delta.norm(dim=1) if norm == "l2" else delta.abs().sum(1)
        over = size > eps * (1 + RTOL) + ATOL
        if over.any():
            problems.append(f"{int(over.sum())} outside its {norm} ball of eps {eps:.6g} "
                            f"(largest {norm} perturbation {float(size.max()):.6g})")
    if problems:
        raise ThreatModelError(f"attack {label!r}: of {len(x)} samples, " + "; ".join(problems)
                               + "; its points break its own threat model, so no number is stored")
