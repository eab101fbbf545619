"""Gaussian noise, FGSM, BIM (I-FGSM) and PGD."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import torch
from torch import nn

from advx.api import AttackBase, may_stop_when_fooled, progress_part, report_progress, sample_rows, streams

from .ops import ascent_direction, linf_box, loss_and_grad, project, random_start, success

_pos = attrs.validators.ge(0)


@attrs.frozen
class GaussianNoise(AttackBase):
    """Gaussian noise GN(σ): x + N(0, σ²), clipped to the bounds.

    Paper 000 (Agarwal et al.), Section 3: GN01, GN05, GN08 are σ = 0.01, 0.05, 0.08 — the
    sensitivity of a model to small random perturbations of images it was trained on.

    Arguments: sigma (0.05). Not gradient-based, not targeted.
    Example: ``advx.create("attack", "gaussian", sigma=0.08)(model, x, y)``.
    """

    name: ClassVar[str] = "gaussian"
    per_sample_streams: ClassVar[bool] = True
    norm: ClassVar[str] = "l2"
    supports_target: ClassVar[bool] = False
    gradient_free: ClassVar[bool] = True
    sigma: float = attrs.field(default=0.05, validator=_pos)

    def perturb(self, model: nn.Module, x, y, *, target, generator, eps):
        return x + self.sigma * streams.normal(generator, x.shape, x)


@attrs.frozen
class FGSM(AttackBase):
    """Fast Gradient Sign Method — Goodfellow et al., "Explaining and Harnessing Adversarial
    Examples", ICLR 2015 (https://arxiv.org/abs/1412.6572). Distance: linf.

    x_adv = x + eps · sign(∇x CE(f(x), y)); targeted: x − eps · sign(∇x CE(f(x), t)).
    Arguments: eps (8/255; papers use 0.03 colour / 0.3 grey, 8/255). Shapes: x (N, C, H, W) in
    [0, 1], y (N,). Cost: 1 forward + 1 backward.
    """

    name: ClassVar[str] = "fgsm"
    per_sample_streams: ClassVar[bool] = True
    eps: float = attrs.field(default=8 / 255, validator=_pos)

    def perturb(self, model, x, y, *, target, generator, eps):
        _, _, grad = loss_and_grad(model, x, y, target, "ce")
        return x + eps * grad.sign()  # on the ball's surface already; the base clamps to the bounds


@attrs.frozen
class PGD(AttackBase):
    """Projected Gradient Descent — Madry et al., "Towards Deep Learning Models Resistant to
    Adversarial Attacks", ICLR 2018 (https://arxiv.org/abs/1706.06083). Distance: linf or l2.

    ``steps`` signed (linf) or normalised (l2) gradient steps of size ``alpha`` from a random
    point of the eps-ball, each projected back onto ball ∩ [0, 1]. ``restarts`` > 1 re-attacks
    only the samples still robust. Targeted when called with ``target=``.
    Each sample gets the latest iterate seen to fool the model, else the last iterate (as standard
    PGD), at no extra pass.
    Arguments: eps (8/255), alpha (None → 2.5·eps/steps, i.e. 2/255 at eps 8/255 and 10 steps),
    steps (10), norm ('linf'), random_start (true), restarts (1), loss ('ce', 'dlr' or 'margin':
    the logit margin, which does not saturate where CE does).
    Cost: ``steps`` forward + backward passes per restart, and with restarts one forward pass of
    the samples not yet known to be fooled. Papers: 100 steps (000); eps .3 step .1 40 it
    (001 MNIST); eps 8/255 step 2/255, 7/10/50/200 it (001, 004).
    """

    name: ClassVar[str] = "pgd"
    per_sample_streams: ClassVar[bool] = True
    eps: float = attrs.field(default=8 / 255, validator=_pos)
    alpha: float | None = None
    steps: int = attrs.field(default=10, validator=attrs.validators.ge(1))
    norm: Literal["linf", "l2"] = attrs.field(default="linf", validator=attrs.validators.in_(["linf", "l2"]))
    random_start: bool = True
    restarts: int = attrs.field(default=1, validator=attrs.validators.ge(1))
    loss: Literal["ce", "dlr", "margin"] = attrs.field(default="ce",
                                                       validator=attrs.validators.in_(["ce", "dlr", "margin"]))

    def step_size(self, eps: torch.Tensor) -> torch.Tensor:
        return 2.5 * eps / self.steps if self.alpha is None else torch.full_like(eps, self.alpha)

    def run_once(self, model, x, y, target, generator, eps):
        """``steps`` projected steps for exactly ``steps`` forward + backward passes. Each pass sees
        the point it differentiates, so each sample gets the latest iterate seen to fool the model
        (an oscillating step never hands back a point weaker than one it passed), else the last
        iterate — what standard PGD returns; no pass sees it, and checking it would cost one
        forward pass more. Returns the points and which samples are known to be fooled."""
        alpha = self.step_size(eps)
        box = linf_box(x, eps, self.bounds) if self.norm == "linf" else None
        if not self.random_start:
            x_adv = x.clone()
        elif box is not None:
            x_adv = random_start(x, eps, self.norm, generator).clamp_(*box)
        else:
            x_adv = project(random_start(x, eps, self.norm, generator), x, eps, self.norm, self.bounds)
        best, seen, column = x_adv, [], (-1, *([1] * (x.ndim - 1)))
        if may_stop_when_fooled():  # exact savings: the evaluator scores these points on this model
            return self.run_until_fooled(model, x, y, target, eps, alpha, box, x_adv)
        for k in range(self.steps):
            report_progress(k, self.steps)
            _, logits, grad = loss_and_grad(model, x_adv, y, target, self.loss, per_sample=False)
            with torch.no_grad():
                seen.append(success(logits, y, target))
                best = torch.where(seen[-1].view(column), x_adv, best)
                x_adv = torch.addcmul(x_adv, alpha, ascent_direction(grad, self.norm))
                x_adv = x_adv.clamp_(*box) if box is not None else project(x_adv, x, eps, self.norm, self.bounds)
        fooled = torch.stack(seen).any(0)  # one reduction after the loop, not an or per step
        return torch.where(fooled.view(column), best, x_adv), fooled

    def run_until_fooled(self, model, x, y, target, eps, alpha, box, x_adv):
        """``run_once`` where a sample leaves the batch at the first point seen to fool the model
        (advx.api.may_stop_when_fooled): the same samples end fooled, at fewer passes; the others
        run every step and return their last iterate, as in ``run_once``."""
        out, fooled = x_adv.clone(), torch.zeros(len(x), dtype=torch.bool, device=x.device)
        rows = torch.arange(len(x), device=x.device)
        with sample_rows(rows) as frame:
            for k in range(self.steps):
                report_progress(k, self.steps)
                _, logits, grad = loss_and_grad(model, x_adv, y, target, self.loss, per_sample=False)
                with torch.no_grad():
                    now = success(logits, y, target)
                    if bool(now.any()):
                        out[rows[now]], fooled[rows[now]] = x_adv[now], True
                        left = ~now
                        rows, x, y, eps, alpha, x_adv, grad = (t[left] for t in (rows, x, y, eps, alpha, x_adv, grad))
                        target = None if target is None else target[left]
                        box = None if box is None else (box[0][left], box[1][left])
                        if len(rows) == 0:
                            return out, fooled
                        frame.set(rows)  # the ledger: the batch now carries these samples
                    x_adv = torch.addcmul(x_adv, alpha, ascent_direction(grad, self.norm))
                    x_adv = x_adv.clamp_(*box) if box is not None else project(x_adv, x, eps, self.norm, self.bounds)
        out[rows] = x_adv
        return out, fooled

    def checked(self, model, x_adv, y, target, known):
        """Which samples ``x_adv`` fools: ``known`` ones without a pass, the rest by one forward."""
        fooled = known.clone()
        rest = (~known).nonzero().flatten()
        if len(rest):
            with torch.no_grad():
                with sample_rows(rest):
                    fooled[rest] = success(model(x_adv[rest]), y[rest], None if target is None else target[rest])
        return fooled

    def perturb(self, model, x, y, *, target, generator, eps):
        with progress_part("", 0, self.restarts):
            x_adv, known = self.run_once(model, x, y, target, generator, eps)
        if self.restarts == 1:
            return x_adv
        fooled = self.checked(model, x_adv, y, target, known)
        for r in range(1, self.restarts):
            todo = (~fooled).nonzero().flatten()
            if len(todo) == 0:
                break
            t = None if target is None else target[todo]
            with progress_part(f"restart {r + 1}", r, self.restarts), sample_rows(todo):
                cand, known = self.run_once(model, x[todo], y[todo], t, streams.subset(generator, todo), eps[todo])
                ok = self.checked(model, cand, y[todo], t, known)
            x_adv[todo[ok]] = cand[ok]
            fooled[todo[ok]] = True
        return x_adv


@attrs.frozen
class BIM(PGD):
    """Basic Iterative Method / I-FGSM — Kurakin et al., "Adversarial examples in the physical
    world", 2016 (https://arxiv.org/abs/1607.02533). Distance: linf.

    PGD without the random start: ``steps`` signed steps of size ``alpha`` (None → eps/steps),
    clipped to the eps-ball. Paper 000 uses 40 steps.
    """

    name: ClassVar[str] = "bim"
    alpha: float | None = None
    steps: int = attrs.field(default=40, validator=attrs.validators.ge(1))
    random_start: bool = False

    def step_size(self, eps: torch.Tensor) -> torch.Tensor:
        return eps / self.steps if self.alpha is None else torch.full_like(eps, self.alpha)
