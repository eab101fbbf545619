"""AutoPGD — Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020 (https://arxiv.org/abs/2003.01690), Algorithm 1; its l1
version — Croce & Hein, "Mind the box: l1-APGD for sparse adversarial attacks on image classifiers",
ICML 2021 (https://arxiv.org/abs/2103.01208)."""

from __future__ import annotations

import math
from typing import ClassVar, Literal

import attrs
import torch

from advx.api import AttackBase, may_stop_when_fooled, progress_part, report_progress, sample_rows, streams


from .ops import ascent_direction, loss_and_grad, project, project_l1, random_start, success


def checkpoints(n_iter: int) -> list[int]:
    """Iterations at which the step size is reviewed: p0 = 0, p1 = 0.22, p_{j+1} = p_j +
    max(p_j − p_{j−1} − 0.03, 0.06), times ``n_iter``, rounded up (Section 3.2)."""
    p = [0.0, 0.22]
    while p[-1] < 1:
        p.append(p[-1] + max(p[-1] - p[-2] - 0.03, 0.06))
    return sorted({math.ceil(q * n_iter - 1e-9) for q in p if q <= 1})


@attrs.define
class Best:
    """APGD's per-sample record of a run: the latest adversarial point found (``adv``: the
    reference's ``x_best_adv``, overwritten at every step that fools), and the highest-loss point
    with its loss and gradient (where a step-size review restarts from). Against a deterministic
    model any fooling point fools; against a randomized one the latest lies deepest in the region
    that fooled a draw, and keeping the first would keep a point that fooled one lucky draw."""

    fooled: torch.Tensor
    adv: torch.Tensor
    x: torch.Tensor
    loss: torch.Tensor
    grad: torch.Tensor

    @classmethod
    def start(cls, x_adv: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor, fooled: torch.Tensor) -> "Best":
        return cls(fooled, x_adv.clone(), x_adv.clone(), loss.clone(), grad.clone())

    def update(self, x_adv: torch.Tensor, loss: torch.Tensor, grad: torch.Tensor, now: torch.Tensor) -> None:
        """Record a step's point (masks through torch.where: no host-device sync in the loop)."""
        shape = (-1,) + (1,) * (x_adv.ndim - 1)
        self.adv = torch.where(now.view(shape), x_adv, self.adv)
        self.fooled = self.fooled | now
        better = loss > self.loss
        self.x = torch.where(better.view(shape), x_adv, self.x)
        self.grad = torch.where(better.view(shape), grad, self.grad)
        self.loss = torch.where(better, loss, self.loss)

    def subset(self, keep: torch.Tensor) -> "Best":
        """The record of the rows ``keep`` marks (the samples still attacked)."""
        return Best(self.fooled[keep], self.adv[keep], self.x[keep], self.loss[keep], self.grad[keep])

    def result(self) -> torch.Tensor:
        """Fooled samples: the latest adversarial point found; the others: the highest-loss point."""
        return torch.where(self.fooled.view((-1,) + (1,) * (self.x.ndim - 1)), self.adv, self.x)


@attrs.frozen
class APGD(AttackBase):
    """AutoPGD — Croce & Hein, ICML 2020 (https://arxiv.org/abs/2003.01690). Distance: linf, l2 or l1.

    CE or DLR loss (targeted: −CE towards the target, or targeted DLR).

    Step size starts at 2·eps and halves at a checkpoint when fewer than ρ = 0.75 of the steps
    since the last one increased the loss (condition 1) or when the step was not reduced and the
    best loss did not improve (condition 2); it then restarts from the best point. Momentum 0.75
    (the first step has none). ``restarts`` re-attack only samples still robust. Where the
    evaluator scores the points on the model attacked (``advx.api.may_stop_when_fooled``: no
    defence, deterministic; ``advx eval``'s setting) a fooled sample leaves the batch with its first
    fooling point: the same robust set at fewer passes (issue #48's exact savings); elsewhere every
    sample runs every step and keeps its latest fooling point, as the reference does.
    Arguments: eps (8/255), steps (100), norm ('linf'|'l2'), loss ('ce'|'dlr'|'margin'), restarts (1),
    rho (0.75), momentum (0.75), random_start (true), eot (1: gradient averaged over that many
    passes, for randomized models). Cost: (steps + 1) x eot forward passes and steps x eot
    backward passes (the last point is only evaluated).
    Paper 003 uses eps 8/255 and 16/255 (25 iterations).

    ``norm = "l1"`` is l1-APGD (Croce & Hein, ICML 2021, Section 3): each step moves along the
    signs of the largest gradient entries only (a fraction that adapts to the sparsity of the best
    point found), by a step of eps that shrinks 1.5-fold at each review (every 4 % of the steps)
    unless the best point got sparser; no momentum; every point is projected onto the l1 ball
    intersected with the pixel box (``ops.project_l1``). With ``l1_schedule`` (default, as
    AutoAttack runs it) the budget goes 3·eps, 2·eps, eps over 30 %, 30 % and 40 % of the steps,
    each stage starting from the last one's best point.
    """

    name: ClassVar[str] = "apgd"
    per_sample_streams: ClassVar[bool] = True
    eps: float = attrs.field(default=8 / 255, validator=attrs.validators.ge(0))
    steps: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    norm: Literal["linf", "l2", "l1"] = attrs.field(default="linf",
                                                    validator=attrs.validators.in_(["linf", "l2", "l1"]))
    loss: Literal["ce", "dlr", "margin"] = attrs.field(default="ce",
                                                       validator=attrs.validators.in_(["ce", "dlr", "margin"]))
    restarts: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    rho: float = 0.75
    momentum: float = 0.75
    random_start: bool = True
    eot: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    l1_schedule: bool = True

    def run_once(self, model, x, y, target, generator, eps, *, any_misclassification: bool = False):
        """One run from a (random) start. ``target`` steers the loss; success is reaching it, or
        with ``any_misclassification`` leaving the true class (APGD-T's criterion)."""
        if self.norm == "l1":
            return self.run_once_l1(model, x, y, target, generator, eps, any_misclassification=any_misclassification)
        goal = None if any_misclassification else target
        n = x.shape[0]
        shape = (-1,) + (1,) * (x.ndim - 1)
        checks = set(checkpoints(self.steps)) - {0}
        x_adv = project(random_start(x, eps, self.norm, generator), x, eps, self.norm, self.bounds) \
            if self.random_start else x.clone()
        loss, logits, grad = loss_and_grad(model, x_adv, y, target, self.loss, self.eot)
        best = Best.start(x_adv, loss, grad, success(logits, y, goal))
        step = 2 * eps * torch.ones(n, *([1] * (x.ndim - 1)), device=x.device, dtype=x.dtype)
        x_prev = x_adv.clone()
        increases = torch.zeros(n, device=x.device)
        last_check, loss_best_at_check = 0, best.loss.clone()
        reduced_at_check = torch.ones(n, dtype=torch.bool, device=x.device)
        prev_loss = loss.clone()
        # exact savings (advx.api.may_stop_when_fooled): a fooled sample leaves the batch with its
        # first fooling point; every per-sample state below is indexed by the rows still running
        stop = may_stop_when_fooled() and self.eot == 1
        rows = torch.arange(n, device=x.device) if stop else None
        if stop:
            out_x, out_fooled = x.clone(), torch.zeros(n, dtype=torch.bool, device=x.device)
        with sample_rows(torch.arange(n)) as frame:
            for k in range(self.steps):
                report_progress(k, self.steps)
                if stop and bool(best.fooled.any()):
                    left = ~best.fooled
                    out_x[rows[best.fooled]] = best.adv[best.fooled]
                    out_fooled[rows[best.fooled]] = True
                    rows, x, y, eps = rows[left], x[left], y[left], eps[left]
                    target = None if target is None else target[left]
                    goal = None if any_misclassification else target
                    best = best.subset(left)
                    x_adv, x_prev, grad, step = x_adv[left], x_prev[left], grad[left], step[left]
                    increases, loss_best_at_check = increases[left], loss_best_at_check[left]
                    reduced_at_check, prev_loss = reduced_at_check[left], prev_loss[left]
                    if len(rows) == 0:
                        return out_x, out_fooled
                    frame.set(rows)  # the ledger: the batch now carries these samples
                with torch.no_grad():
                    z = project(x_adv + step * ascent_direction(grad, self.norm), x, eps, self.norm, self.bounds)
                    a = self.momentum if k > 0 else 1.0
                    x_new = project(x_adv + a * (z - x_adv) + (1 - a) * (x_adv - x_prev), x, eps, self.norm, self.bounds)
                    x_prev, x_adv = x_adv, x_new
                last = k == self.steps - 1  # no step uses the last point's gradient: a forward pass sees it
                loss, logits, g = loss_and_grad(model, x_adv, y, target, self.loss, self.eot, backward=not last)
                grad = grad if last else g
                with torch.no_grad():  # masks through torch.where: no host-device sync inside the loop
                    best.update(x_adv, loss, grad, success(logits, y, goal))
                    increases += (loss > prev_loss).float()
                    prev_loss = loss
                    if k + 1 in checks:
                        span = k + 1 - last_check
                        cond1 = increases < self.rho * span
                        cond2 = ~reduced_at_check & (best.loss <= loss_best_at_check)
                        reduce = cond1 | cond2
                        r = reduce.view(shape)
                        step = torch.where(r, step / 2, step)
                        x_adv, grad = torch.where(r, best.x, x_adv), torch.where(r, best.grad, grad)
                        x_prev = torch.where(r, best.x, x_prev)
                        reduced_at_check = reduce
                        loss_best_at_check = best.loss.clone()
                        increases.zero_()
                        last_check = k + 1
        if rows is None:
            return best.result(), best.fooled
        out_x[rows], out_fooled[rows] = best.result(), best.fooled
        return out_x, out_fooled

    def run_once_l1(self, model, x, y, target, generator, eps, *, any_misclassification: bool = False):
        """l1-APGD from a random start: with ``l1_schedule`` three stages at 3·eps, 2·eps and eps
        (30/30/40 % of the steps), each from the previous stage's best point; else one stage."""
        start = x + streams.normal(generator, x.shape, x)
        if not self.l1_schedule:
            return self.l1_stage(model, x, y, target, eps, self.steps, start, any_misclassification, fresh=True)[:2]
        early = math.ceil(0.3 * self.steps)  # steps at 3·eps, and again at 2·eps
        stages = [(3 * eps, early), (2 * eps, early), (eps, max(1, self.steps - 2 * early))]
        for budget, steps in stages:
            x_adv, fooled, start = self.l1_stage(model, x, y, target, budget, steps, start, any_misclassification)
        return x_adv, fooled

    def l1_stage(self, model, x, y, target, eps, steps, start, any_misclassification, fresh: bool = False):
        """One l1-APGD run of ``steps`` at budget ``eps`` from ``start`` (projected first). Steps
        move 20 % of the coordinates from a ``fresh`` random start, else 1/1.5 of the start's
        nonzero fraction. Returns (result, fooled, best-loss point): the result is the latest
        adversarial point found, else the highest-loss one."""
        goal = None if any_misclassification else target
        shape = (-1,) + (1,) * (x.ndim - 1)
        features = x[0].numel()
        period = max(int(0.04 * steps), 1)
        x_adv = x + project_l1(x, start - x, eps, self.bounds)
        nonzero = (x_adv - x).flatten(1).ne(0).sum(1).float()
        keep = torch.full_like(nonzero, 0.2) if fresh else nonzero / features / 1.5  # fraction a step moves
        sparsity_at_check = torch.full_like(nonzero, float(features)) if fresh else nonzero
        loss, logits, grad = loss_and_grad(model, x_adv, y, target, self.loss, self.eot)
        best = Best.start(x_adv, loss, grad, success(logits, y, goal))
        full = eps.view(shape).to(x.dtype) * torch.ones(len(x), *([1] * (x.ndim - 1)), device=x.device)
        step = full.clone()
        for k in range(steps):
            report_progress(k, steps)
            with torch.no_grad():
                flat = grad.abs().flatten(1)
                rank = ((1 - keep) * features).clamp(0, features - 1).long()
                threshold = flat.sort(1).values.gather(1, rank[:, None]).view(shape)
                direction = grad.sign() * (grad.abs() >= threshold)
                direction = direction / (direction.abs().flatten(1).sum(1).view(shape) + 1e-10)
                x_adv = x + project_l1(x, x_adv + step * direction - x, eps, self.bounds)
            last = k == steps - 1
            loss, logits, g = loss_and_grad(model, x_adv, y, target, self.loss, self.eot, backward=not last)
            grad = grad if last else g
            with torch.no_grad():
                best.update(x_adv, loss, grad, success(logits, y, goal))
                if (k + 1) % period == 0:  # review: sparser best point -> full step from it, else shrink
                    sparsity = (best.x - x).flatten(1).ne(0).sum(1).float()
                    sparser = (sparsity / sparsity_at_check.clamp(min=1)) < 0.95
                    keep = sparsity / features / 1.5
                    r = sparser.view(shape)
                    step = torch.where(r, full, step / 1.5).clamp(min=full / 10, max=full)
                    sparsity_at_check = sparsity
                    x_adv, grad = torch.where(r, best.x, x_adv), torch.where(r, best.grad, grad)
        return best.result(), best.fooled, best.x

    def perturb(self, model, x, y, *, target, generator, eps):
        with progress_part("", 0, self.restarts):
            x_adv, fooled = self.run_once(model, x, y, target, generator, eps)
        for r in range(1, self.restarts):
            todo = (~fooled).nonzero().flatten()
            if len(todo) == 0:
                break
            t = None if target is None else target[todo]
            with progress_part(f"restart {r + 1}", r, self.restarts), sample_rows(todo):
                cand, ok = self.run_once(model, x[todo], y[todo], t, streams.subset(generator, todo), eps[todo])
            x_adv[todo[ok]] = cand[ok]
            fooled[todo[ok]] = True
        return x_adv
