"""Norm-ball geometry and attack losses shared by the attacks (all per sample, fp32)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

TINY = 1e-12


def flat_norm(t: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm as N x 1 x 1 x 1."""
    f = t.flatten(1)
    n = f.abs().amax(1) if norm == "linf" else f.norm(dim=1)
    return n.view(-1, *([1] * (t.ndim - 1)))


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent unit step: sign for linf, normalised gradient for l2. A zero gradient
    gives a zero step, never NaN (the guard one library missed)."""
    if norm == "linf":
        return grad.sign()
    return grad / (flat_norm(grad, "l2") + TINY)


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str,
            bounds: tuple[float, float]) -> torch.Tensor:
    """Project onto {‖x_adv − x‖ ≤ eps} ∩ [lo, hi]."""
    delta = x_adv - x
    if norm == "linf":
        delta = torch.maximum(torch.minimum(delta, eps), -eps)
    else:
        delta = delta * torch.clamp(eps / (flat_norm(delta, "l2") + TINY), max=1.0)
    return (x + delta).clamp(*bounds)


def random_start(x: torch.Tensor, eps: torch.Tensor, norm: str, g: torch.Generator | None) -> torch.Tensor:
    """Uniform point of the linf ball, or uniform point of the l2 ball (direction ~ N(0, I),
    radius ∝ u^(1/d))."""
    if norm == "linf":
        u = torch.rand(x.shape, generator=g).to(x)
        return x + (2 * u - 1) * eps
    d = x[0].numel()
    n = torch.randn(x.shape, generator=g).to(x)
    r = torch.rand(x.shape[0], generator=g).to(x).pow(1.0 / d).view(-1, *([1] * (x.ndim - 1)))
    return x + n / (flat_norm(n, "l2") + TINY) * r * eps


def other_max(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Largest logit among classes other than ``y`` — masked with -inf, so it is right even
    when every logit is negative."""
    return logits.masked_fill(F.one_hot(y, logits.shape[1]).bool(), float("-inf")).amax(1)


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference-of-logits-ratio (Croce & Hein 2020, Eq. 6): −(z_y − max_{i≠y} z_i)/(z_π1 − z_π3)."""
    z = logits.float()
    s = z.sort(dim=1, descending=True).values
    zy = z.gather(1, y[:, None]).squeeze(1)
    return -(zy - other_max(z, y)) / (s[:, 0] - s[:, 2] + TINY)


def dlr_targeted_loss(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Targeted DLR (Croce & Hein 2020, Eq. 7): −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2); maximising it
    raises the target logit over the true one."""
    z = logits.float()
    s = z.sort(dim=1, descending=True).values
    zy = z.gather(1, y[:, None]).squeeze(1)
    zt = z.gather(1, target[:, None]).squeeze(1)
    return -(zy - zt) / (s[:, 0] - 0.5 * (s[:, 2] + s[:, 3]) + TINY)


def attack_loss(kind: str, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Per-sample loss to *maximise*: CE away from ``y``, or towards ``target`` (−CE), or DLR."""
    logits = logits.float()
    if kind == "ce":
        if target is None:
            return F.cross_entropy(logits, y, reduction="none")
        return -F.cross_entropy(logits, target, reduction="none")
    if kind == "dlr":
        need = 3 if target is None else 4
        if logits.shape[1] < need:
            raise ValueError(f"the DLR loss needs at least {need} classes, got {logits.shape[1]}; use loss = 'ce'")
        return dlr_loss(logits, y) if target is None else dlr_targeted_loss(logits, y, target)
    raise ValueError(f"unknown loss {kind!r}")


def success(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Per-sample attack success: misclassified (untargeted) or classified as ``target``."""
    pred = logits.argmax(1)
    return pred != y if target is None else pred == target


def loss_and_grad(model, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
                  kind: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One forward + one backward: (per-sample loss, logits, gradient w.r.t. x_adv)."""
    x_adv = x_adv.detach().requires_grad_(True)
    logits = model(x_adv).float()
    loss = attack_loss(kind, logits, y, target)
    (grad,) = torch.autograd.grad(loss.sum(), x_adv)
    return loss.detach(), logits.detach(), grad.detach().contiguous()  # autograd may hand back an expanded view
