"""Norm-ball geometry and attack losses shared by the attacks (all per sample, fp32)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from advx.api import streams

TINY = 1e-12


def flat_norm(t: torch.Tensor, norm: str) -> torch.Tensor:
    """Per-sample norm as N x 1 x 1 x 1."""
    f = t.flatten(1)
    n = f.abs().amax(1) if norm == "linf" else f.abs().sum(1) if norm == "l1" else f.norm(dim=1)
    return n.view(-1, *([1] * (t.ndim - 1)))


def ascent_direction(grad: torch.Tensor, norm: str) -> torch.Tensor:
    """Steepest-ascent unit step: sign for linf, normalised gradient for l2. A zero gradient
    gives a zero step, never NaN (the guard one library missed)."""
    if norm == "linf":
        return grad.sign()
    return grad / (flat_norm(grad, "l2") + TINY)


def linf_box(x: torch.Tensor, eps: torch.Tensor, bounds: tuple[float, float]) -> tuple[torch.Tensor, torch.Tensor]:
    """The per-pixel interval {‖x_adv − x‖∞ ≤ eps} ∩ [lo, hi]: projecting onto it is one clamp
    per step (``x_adv.clamp_(low, high)``) instead of four kernels."""
    return (x - eps).clamp_(min=bounds[0]), (x + eps).clamp_(max=bounds[1])


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: torch.Tensor, norm: str,
            bounds: tuple[float, float]) -> torch.Tensor:
    """Project onto {‖x_adv − x‖ ≤ eps} ∩ [lo, hi]."""
    delta = x_adv - x
    if norm == "linf":
        delta = delta.clamp(-eps, eps)  # one pass (eps is N x 1 x 1 x 1)
    else:
        delta = delta * torch.clamp(eps / (flat_norm(delta, "l2") + TINY), max=1.0)
    return (x + delta).clamp_(*bounds)


def project_l1(x: torch.Tensor, delta: torch.Tensor, eps: torch.Tensor, bounds: tuple[float, float],
               iters: int = 40) -> torch.Tensor:
    """The Euclidean projection of ``delta`` onto {‖d‖₁ ≤ eps} ∩ {lo ≤ x + d ≤ hi}, per sample.

    Each coordinate keeps the sign of ``delta`` and the magnitude clip(|delta_i| − λ, 0, room_i),
    room_i being the distance to the bound it moves towards (the KKT conditions of the problem,
    as in Croce & Hein, "Mind the box: l1-APGD", ICML 2021, Section 3.2). λ = 0 when the box alone
    keeps the l1 norm within eps; else the smallest λ that does, by bisection on the monotone
    total (``iters`` halvings; the upper end is kept, so the norm never exceeds eps)."""
    lo, hi = bounds
    d = delta.flatten(1)
    room = torch.where(d >= 0, hi - x.flatten(1), x.flatten(1) - lo).clamp_(min=0)
    size = d.abs()
    r = eps.reshape(-1, 1).to(d.dtype)

    def total(lam: torch.Tensor) -> torch.Tensor:
        return torch.minimum((size - lam).clamp_(min=0), room).sum(1, keepdim=True)

    low = torch.zeros_like(r)
    high = torch.where(total(low) > r, size.amax(1, keepdim=True), low)
    for _ in range(iters):
        mid = (low + high) / 2
        over = total(mid) > r
        low, high = torch.where(over, mid, low), torch.where(over, high, mid)
    out = d.sign() * torch.minimum((size - high).clamp_(min=0), room)
    return out.view_as(delta)


def random_start(x: torch.Tensor, eps: torch.Tensor, norm: str, g: object) -> torch.Tensor:
    """Uniform point of the linf ball, or uniform point of the l2 ball (direction ~ N(0, I),
    radius ∝ u^(1/d))."""
    if norm == "linf":
        u = streams.uniform(g, x.shape, x)
        return x + (2 * u - 1) * eps
    d = x[0].numel()
    n = streams.normal(g, x.shape, x)
    r = streams.uniform(g, (x.shape[0],), x).pow(1.0 / d).view(-1, *([1] * (x.ndim - 1)))
    return x + n / (flat_norm(n, "l2") + TINY) * r * eps


def other_max(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Largest logit among classes other than ``y`` — masked with -inf, so it is right even
    when every logit is negative."""
    return logits.scatter(1, y[:, None], float("-inf")).amax(1)


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
    if kind == "margin":  # Carlini & Wagner's logit margin (their f6 without the clamp): never saturates like CE
        if target is None:
            return other_max(logits, y) - logits.gather(1, y[:, None]).squeeze(1)
        return logits.gather(1, target[:, None]).squeeze(1) - other_max(logits, target)
    raise ValueError(f"unknown loss {kind!r}")


def success(logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """Per-sample attack success: misclassified (untargeted) or classified as ``target``."""
    pred = logits.argmax(1)
    return pred != y if target is None else pred == target


def summed_loss(kind: str, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
    """The batch's total ``attack_loss``; CE is summed inside its kernel (the same gradient as
    summing per-sample losses, one kernel fewer per step: PGD's steps are launch-bound on a GPU)."""
    if kind == "ce":
        logits = logits.float()
        if target is None:
            return F.cross_entropy(logits, y, reduction="sum")
        return -F.cross_entropy(logits, target, reduction="sum")
    return attack_loss(kind, logits, y, target).sum()


def loss_and_grad(model, x_adv: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
                  kind: str, eot: int = 1, *, backward: bool = True,
                  per_sample: bool = True) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """One forward + one backward: (per-sample loss, logits, gradient w.r.t. x_adv). With
    ``eot`` > 1 the loss, logits and gradient are averaged over that many passes (Expectation over
    Transformation for a randomized model; AutoAttack's "rand" version uses 20). ``backward = False``
    runs the forward passes only (a last point whose gradient no step will use) and returns None
    for the gradient. ``per_sample = False`` returns the batch's summed loss instead (for callers
    that only need the gradient)."""
    if not backward:
        with torch.no_grad():
            logits = [model(x_adv).float() for _ in range(eot)]
            loss = sum(attack_loss(kind, lg, y, target) for lg in logits) / eot
        return loss, sum(logits) / eot, None
    total = None
    for _ in range(eot):
        x_in = x_adv.detach().requires_grad_(True)
        logits = model(x_in).float()
        if per_sample:
            loss = attack_loss(kind, logits, y, target)
            (grad,) = torch.autograd.grad(loss.sum(), x_in)
        else:
            loss = summed_loss(kind, logits, y, target)
            (grad,) = torch.autograd.grad(loss, x_in)
        out = (loss.detach(), logits.detach(), grad.detach())
        total = out if total is None else tuple(a + b for a, b in zip(total, out))
    loss, logits, grad = (t / eot for t in total) if eot > 1 else total
    return loss, logits, grad.contiguous()  # autograd may hand back an expanded view


def project_onto_hyperplane(w: torch.Tensor, c: torch.Tensor, room_up: torch.Tensor, room_down: torch.Tensor,
                            norm: str) -> torch.Tensor:
    """Minimal-norm ``d`` with ``w·d = c`` and ``-room_down <= d <= room_up`` (per row, exact).

    FAB's step (Croce & Hein, ICML 2020, Section 3.1) projects onto a linearised decision boundary
    intersected with the pixel box. The optimal ``d_i`` has the sign of ``w_i`` (of ``c·w_i``) and
    grows with one scalar ``t`` until its box face: linf ``|d_i| = min(t, r_i)``, l2
    ``|d_i| = min(t·|w_i|, r_i)``. Then ``w·d = Σ a_i min(t, s_i)`` is piecewise linear in ``t``,
    solved exactly by sorting the breakpoints ``s_i``. l1 is a fractional knapsack: each unit of
    ``|d_i|`` buys ``|w_i|`` of ``w·d``, so the coordinates fill to their faces in decreasing
    ``|w_i|`` and the last one reached moves only as far as needed (the reference's
    ``projection_l1``). When even the whole box cannot reach the plane, every coordinate goes to
    its face (the closest point of the box to the plane).
    Rows are flattened samples: ``w``, ``room_*`` (N, D), ``c`` (N,).
    """
    sign = torch.where(c < 0, -1.0, 1.0).to(w).unsqueeze(1)
    w, c = w * sign, c.abs()  # now c >= 0; d_i has the sign of w_i
    aw = w.abs()
    room = torch.where(w >= 0, room_up, room_down).clamp(min=0)
    if norm == "l1":
        return torch.sign(w) * knapsack_l1(aw, room, c)
    if norm == "linf":
        a, s = aw, room
    else:
        a = aw * aw
        s = torch.where(aw > 0, room / aw.clamp(min=TINY), torch.zeros_like(room))
    s_sorted, order = s.sort(dim=1)
    a_sorted = a.gather(1, order)
    suffix = a_sorted.flip(1).cumsum(1).flip(1)                       # Σ_{i>=j} a_i
    prefix = (a_sorted * s_sorted).cumsum(1) - a_sorted * s_sorted    # Σ_{i<j} a_i s_i
    h = prefix + s_sorted * suffix                                    # w·d at t = s_j (non-decreasing)
    j = (h < c.unsqueeze(1)).sum(1, keepdim=True)                     # first breakpoint reaching c
    feasible = j < s.shape[1]
    jc = j.clamp(max=s.shape[1] - 1)
    t = (c.unsqueeze(1) - prefix.gather(1, jc)) / suffix.gather(1, jc).clamp(min=TINY)
    t = torch.where(feasible, t, torch.full_like(t, float("inf")))
    mag = torch.minimum(t, room) if norm == "linf" else torch.minimum(t * aw, room)
    return torch.sign(w) * mag


def knapsack_l1(aw: torch.Tensor, room: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Magnitudes ``m`` (0 <= m <= room) of least l1 norm with ``Σ aw·m = c`` (c >= 0, per row):
    greedy in decreasing ``aw``, exact for this linear programme; all faces when ``c`` is out of
    reach."""
    aw_sorted, order = aw.sort(dim=1, descending=True)
    room_sorted = room.gather(1, order)
    gain = aw_sorted * room_sorted                     # w·d bought by filling coordinate j
    before = gain.cumsum(1) - gain                     # bought by the coordinates ahead of j
    need = (c.unsqueeze(1) - before).clamp(min=0)      # still missing when j's turn comes
    mag = torch.minimum(room_sorted, need / aw_sorted.clamp(min=TINY))
    mag = torch.where(aw_sorted > 0, mag, torch.zeros_like(mag))
    return torch.zeros_like(mag).scatter(1, order, mag)
