"""FAB — Croce & Hein, "Minimally distorted Adversarial Examples with a Fast Adaptive Boundary
Attack", ICML 2020 (https://arxiv.org/abs/1907.02044), Algorithm 1: targeted (FAB-T, as AutoAttack's
standard version uses it, https://arxiv.org/abs/2003.01690, Section 4) or untargeted (each step
heads for the closest linearised boundary, Eq. 5-6; AutoAttack's "plus" version)."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import torch

from advx.api import AttackBase, progress_part, report_progress, sample_rows, streams

from .apgd_targeted import top_other_classes
from .ops import flat_norm, project_onto_hyperplane, success


@attrs.frozen
class FAB(AttackBase):
    """FAB-T — Croce & Hein, ICML 2020 (https://arxiv.org/abs/1907.02044). Distance: linf, l2 or l1.

    A minimal-norm attack: at the current point x_i, linearise the boundary between the true
    class y and the target t, project both x_i and the original x onto it inside the pixel box
    (exact minimal-norm projections), and step to the convex combination
    (1−α)(x_i + η·δ_i) + α(x + η·δ_x), α = min(‖δ_i‖/(‖δ_i‖+‖δ_x‖), α_max), which biases the
    search towards x. Whenever the step lands across the boundary it is recorded if it is the
    smallest so far and pulled back towards x: x_i ← x + β(x_i − x). Targets are the ``targets``
    classes with the largest clean logits, each run only on the samples not yet broken; restarts
    after the first start at a random point at half the best norm found (or ``eps``).
    Returned: the smallest adversarial found when its norm is at most ``eps`` (per sample),
    otherwise ``x`` unchanged — so robust accuracy at ``eps`` reads off the result directly.
    Arguments: eps (8/255), norm ('linf'|'l2'|'l1'), steps (100), targets (9), restarts (1),
    alpha_max (0.1), eta (1.05), beta (0.9). Cost per step: 1 forward+backward and 1 forward.
    With an explicit ``target=``, that class is the only target (success = reaching it).
    ``targeted = False``: untargeted FAB — each step linearises every class's boundary (one
    forward and backward pass over C copies of the batch) and heads for the closest one
    (|f_k − f_y| / ‖∇f_k − ∇f_y‖_dual, Eq. 5-6); ``targets`` is then unused.
    """

    name: ClassVar[str] = "fab"
    per_sample_streams: ClassVar[bool] = True
    eps: float = attrs.field(default=8 / 255, validator=attrs.validators.ge(0))
    norm: Literal["linf", "l2", "l1"] = attrs.field(default="linf",
                                                    validator=attrs.validators.in_(["linf", "l2", "l1"]))
    steps: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    targets: int = attrs.field(default=9, validator=attrs.validators.ge(1))
    restarts: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    alpha_max: float = attrs.field(default=0.1, validator=attrs.validators.and_(attrs.validators.ge(0),
                                                                                 attrs.validators.le(1)))
    eta: float = attrs.field(default=1.05, validator=attrs.validators.ge(1))
    beta: float = attrs.field(default=0.9, validator=attrs.validators.and_(attrs.validators.gt(0),
                                                                            attrs.validators.le(1)))
    targeted: bool = True

    def boundary_projection(self, w: torch.Tensor, c: torch.Tensor, point: torch.Tensor) -> torch.Tensor:
        """Minimal-norm δ with w·δ = c keeping ``point + δ`` inside the bounds."""
        lo, hi = self.bounds
        flat = point.flatten(1)
        return project_onto_hyperplane(w, c, hi - flat, flat - lo, self.norm).view_as(point)

    def search(self, model, x, y, t, start, goal, classes):
        """One FAB run from ``start`` towards class ``t`` (``classes``: the model's output count):
        (smallest adversarial, its norm)."""
        lo, hi = self.bounds
        shape = (-1,) + (1,) * (x.ndim - 1)
        best = x.clone()
        best_norm = torch.full((x.shape[0],), float("inf"), device=x.device)
        xi = start.clone()
        for k in range(self.steps):
            report_progress(k, self.steps)
            w, diff = self.linearise(model, xi, y, t, classes)
            with torch.no_grad():
                d_i = self.boundary_projection(w, -diff, xi)
                d_x = self.boundary_projection(w, -diff - (w * (x - xi).flatten(1)).sum(1), x)
                a_i, a_x = flat_norm(d_i, self.norm).clamp(min=1e-8), flat_norm(d_x, self.norm).clamp(min=1e-8)
                alpha = (a_i / (a_i + a_x)).clamp(0, self.alpha_max)
                xi = ((xi + self.eta * d_i) * (1 - alpha) + (x + self.eta * d_x) * alpha).clamp(lo, hi)
                hit = success(model(xi).float(), y, goal)
                dist = flat_norm(xi - x, self.norm).view(-1)
                better = hit & (dist < best_norm)
                best = torch.where(better.view(shape), xi, best)
                best_norm = torch.where(better, dist, best_norm)
                xi = torch.where(hit.view(shape), x + self.beta * (xi - x), xi)
        return best, best_norm

    def linearise(self, model, xi, y, t, classes):
        """(∇(f_t − f_y) flattened, f_t − f_y) at ``xi``: towards ``t``, or (``t`` None) towards
        each sample's closest linearised boundary."""
        xg = xi.detach().requires_grad_(True)
        if t is not None:
            logits = model(xg).float()
            diff = logits.gather(1, t[:, None]).squeeze(1) - logits.gather(1, y[:, None]).squeeze(1)
            (w,) = torch.autograd.grad(diff.sum(), xg)
            return w.flatten(1), diff.detach()
        n = len(xi)
        copies = xg.repeat_interleave(classes, 0)          # copy k of sample i differentiates logit k
        with sample_rows(torch.arange(n).repeat_interleave(classes)):
            logits = model(copies).float().view(n, classes, classes)
        own = logits.diagonal(dim1=1, dim2=2)               # N x C: logit k of copy k
        (grads,) = torch.autograd.grad(own.sum(), copies)
        with torch.no_grad():
            grads = grads.view(n, classes, -1)
            f = own.detach()
            w_all = grads - grads.gather(1, y.view(-1, 1, 1).expand(-1, 1, grads.shape[2]))
            f_all = f - f.gather(1, y[:, None])
            # the distance to each boundary is |f| over the dual norm of its gradient
            dual = (w_all.abs().sum(2) if self.norm == "linf" else w_all.norm(dim=2) if self.norm == "l2"
                    else w_all.abs().amax(2))
            dist = f_all.abs() / dual.clamp(min=1e-12)
            dist.scatter_(1, y[:, None], float("inf"))
            k = dist.argmin(1)
            return w_all[torch.arange(n, device=xi.device), k], f_all.gather(1, k[:, None]).squeeze(1)

    def random_point(self, x, radius, generator):
        """A random start at distance ``radius``/2 (FAB's restarts, Section 3.3): uniform signs-and-sizes
        for linf, a Gaussian direction for l2 and l1 (scaled to that norm, as the reference does)."""
        if self.norm == "linf":
            u = 2 * streams.uniform(generator, x.shape, x) - 1
        else:
            u = streams.normal(generator, x.shape, x)
        u = u / flat_norm(u, self.norm).clamp(min=1e-12)
        return (x + 0.5 * radius.view(-1, *([1] * (x.ndim - 1))) * u).clamp(*self.bounds)

    def perturb(self, model, x, y, *, target, generator, eps):
        eps = eps.view(-1)
        with torch.no_grad():
            logits = model(x).float()
        goal = target  # None: any misclassification counts (AutoAttack's FAB-T)
        done = success(logits, y, goal)
        if target is not None:
            plan = list(target[:, None].T)
        elif self.targeted:
            plan = list(top_other_classes(logits, y, self.targets).T)
        else:
            plan = [None]  # untargeted: each step picks the closest boundary
        x_adv = x.clone()
        found = torch.full((x.shape[0],), float("inf"), device=x.device)
        for i, t in enumerate(plan):
            for r in range(self.restarts):
                todo = (~done).nonzero().flatten()
                if len(todo) == 0:
                    return x_adv
                xs = x[todo]
                start = xs if r == 0 else self.random_point(xs, torch.minimum(found[todo], eps[todo]),
                                                                 streams.subset(generator, todo))
                g = None if goal is None else goal[todo]
                label = f"target {i + 1}/{len(plan)}" if t is not None and len(plan) > 1 else ""
                with progress_part(label, i * self.restarts + r, len(plan) * self.restarts), sample_rows(todo):
                    cand, norm = self.search(model, xs, y[todo], None if t is None else t[todo], start, g,
                                             logits.shape[1])
                found[todo] = torch.minimum(found[todo], norm)
                ok = norm <= eps[todo] * (1 + 1e-6)
                x_adv[todo[ok]] = cand[ok]
                done[todo[ok]] = True
        return x_adv
