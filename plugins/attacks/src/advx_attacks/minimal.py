"""Minimal-perturbation attacks: Carlini–Wagner L2 and DeepFool (L2 and linf)."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import torch
import torch.nn.functional as F

from advx.api import AttackBase

from .ops import TINY, flat_norm, other_max


def flat_l1(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).abs().sum(1).view(-1, *([1] * (t.ndim - 1)))


@attrs.frozen
class CarliniWagnerL2(AttackBase):
    """Carlini & Wagner, "Towards Evaluating the Robustness of Neural Networks", IEEE S&P 2017
    (https://arxiv.org/abs/1608.04644). Distance: L2 (minimal, no eps budget).

    Minimise ‖x' − x‖² + c·max(Z_y − max_{i≠y} Z_i, −κ) over x' = lo + (hi−lo)(tanh w + 1)/2 with
    Adam; binary search over c per sample; keep each sample's smallest successful x'. Samples
    that were never fooled are returned unchanged. Early stopping is per sample: a sample whose
    loss stopped decreasing leaves the batch, so later forward and backward passes run only on
    the samples still searching (the cost falls with early stopping; Adam is kept per sample).
    ``search_rtol`` > 0 (off by default, the paper's search) also ends a sample's binary search
    once its bracket on c satisfies upper − lower ≤ rtol·upper: at 0.25 it saved a quarter of the
    forwards at equal success and median L2 (benchmarks/results/cw_early_stop.json).
    Arguments: c (initial constant, 1e-2), binary_search_steps (9), steps (100),
    lr (0.01), confidence κ (0), abort_early (true), search_rtol (0). Targeted: max_{i≠t} Z_i − Z_t.
    Pixels exactly at the bounds map to a finite w (atanh of ±(1 − 1e-6)).
    """

    name: ClassVar[str] = "cw"
    norm: ClassVar[str] = "l2"
    minimal: ClassVar[bool] = True
    c: float = attrs.field(default=1e-2, validator=attrs.validators.gt(0))
    binary_search_steps: int = attrs.field(default=9, validator=attrs.validators.ge(1))
    steps: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    lr: float = attrs.field(default=0.01, validator=attrs.validators.gt(0))
    confidence: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))
    abort_early: bool = True
    search_rtol: float = attrs.field(default=0.0, validator=attrs.validators.ge(0))

    def margin(self, logits: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None) -> torch.Tensor:
        """f ≤ 0 iff the attack succeeded with confidence κ."""
        if target is None:
            zy = logits.gather(1, y[:, None]).squeeze(1)
            return torch.clamp(zy - other_max(logits, y), min=-self.confidence)
        zt = logits.gather(1, target[:, None]).squeeze(1)
        return torch.clamp(other_max(logits, target) - zt, min=-self.confidence)

    def perturb(self, model, x, y, *, target, generator, eps):
        lo, hi = self.bounds
        n = x.shape[0]
        w0 = torch.atanh(((x - lo) / (hi - lo) * 2 - 1).clamp(-1 + 1e-6, 1 - 1e-6))
        const = torch.full((n,), self.c, device=x.device)
        lower = torch.zeros(n, device=x.device)
        upper = torch.full((n,), 1e10, device=x.device)
        best_l2 = torch.full((n,), float("inf"), device=x.device)
        best = x.clone()
        check_every = max(1, self.steps // 10)
        b1, b2 = 0.9, 0.999  # Adam, written out per sample so that only the searching samples run
        for _ in range(self.binary_search_steps):
            w = w0.clone()
            m, v = torch.zeros_like(w), torch.zeros_like(w)
            succeeded = torch.zeros(n, dtype=torch.bool, device=x.device)
            prev = torch.full((n,), float("inf"), device=x.device)
            idx = torch.arange(n, device=x.device)  # the samples still searching (early stopping)
            if self.search_rtol > 0:  # a sample whose bracket [lower, upper] on c is narrow has found its c
                settled = (upper < 1e9) & (lower > 0) & (upper - lower <= self.search_rtol * upper)
                idx = idx[~settled]
                if len(idx) == 0:
                    break
            for it in range(self.steps):
                wa = w[idx].requires_grad_(True)
                x_new = lo + (hi - lo) * (torch.tanh(wa) + 1) / 2
                logits = model(x_new).float()
                l2sq = (x_new - x[idx]).flatten(1).pow(2).sum(1)
                f = self.margin(logits, y[idx], None if target is None else target[idx])
                loss = l2sq + const[idx] * f
                (grad,) = torch.autograd.grad(loss.sum(), wa)
                with torch.no_grad():
                    t = it + 1
                    ma = b1 * m[idx] + (1 - b1) * grad
                    va = b2 * v[idx] + (1 - b2) * grad.square()
                    m[idx], v[idx] = ma, va
                    w[idx] = wa - self.lr / (1 - b1 ** t) * ma / ((va / (1 - b2 ** t)).sqrt() + 1e-8)
                    pred_ok = (f <= -self.confidence) if self.confidence > 0 else (f <= 0)
                    l2, best_l2a = l2sq.sqrt(), best_l2[idx]
                    hit = pred_ok & (l2 < best_l2a)
                    best_l2[idx] = torch.where(hit, l2, best_l2a)
                    best[idx] = torch.where(hit.view(-1, *([1] * (x.ndim - 1))), x_new, best[idx])
                    succeeded[idx] |= pred_ok
                    if self.abort_early and (it + 1) % check_every == 0:
                        loss = loss.detach()
                        keep = loss <= prev[idx] * 0.9999
                        prev[idx] = loss
                        idx = idx[keep]  # finished samples leave every later forward and backward
                        if len(idx) == 0:
                            break
            with torch.no_grad():
                upper = torch.where(succeeded, torch.minimum(upper, const), upper)
                lower = torch.where(succeeded, lower, torch.maximum(lower, const))
                const = torch.where(upper < 1e9, (lower + upper) / 2, const * 10)
        return best


@attrs.frozen
class DeepFool(AttackBase):
    """DeepFool — Moosavi-Dezfooli et al., "DeepFool: a simple and accurate method to fool deep
    neural networks", CVPR 2016 (https://arxiv.org/abs/1511.04599). Distance: L2 or linf.

    Linearise the classifier around the current point, step to the nearest linearised decision
    boundary among the ``candidates`` top classes, repeat until the label flips (checked per
    sample: finished samples stop) or ``steps`` is reached; the total perturbation is scaled by
    (1 + overshoot). The gradients of all candidate logit differences come from one backward
    pass over a (candidates x N) batch. Works on logits.
    Arguments: steps (50; paper 002 sweeps 1..5), overshoot (0.02), norm ('l2'|'linf'),
    candidates (10). Untargeted only.
    """

    name: ClassVar[str] = "deepfool"
    minimal: ClassVar[bool] = True
    supports_target: ClassVar[bool] = False
    steps: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    overshoot: float = attrs.field(default=0.02, validator=attrs.validators.ge(0))
    norm: Literal["l2", "linf"] = attrs.field(default="l2", validator=attrs.validators.in_(["l2", "linf"]))
    candidates: int = attrs.field(default=10, validator=attrs.validators.ge(2))

    def perturb(self, model, x, y, *, target, generator, eps):
        with torch.no_grad():
            logits0 = model(x).float()
        k = min(self.candidates, logits0.shape[1])
        # candidate classes: the true class first, then the top others by clean logit
        others = logits0.masked_fill(F.one_hot(y, logits0.shape[1]).bool(), float("-inf")).topk(k - 1, 1).indices
        cls = torch.cat([y[:, None], others], 1)  # n x k
        r_tot = torch.zeros_like(x)
        active = logits0.argmax(1) == y
        x_adv = x.clone()
        for _ in range(self.steps):
            idx = active.nonzero().flatten()
            if len(idx) == 0:
                break
            xa = (x[idx] + (1 + self.overshoot) * r_tot[idx]).clamp(*self.bounds)
            xa = xa.detach().requires_grad_(True)
            m = len(idx)
            rep = xa.unsqueeze(0).expand(k - 1, *xa.shape).reshape(-1, *xa.shape[1:])  # (k-1)·m
            out = model(rep).float().view(k - 1, m, -1)
            c = cls[idx]
            zy = out.gather(2, c[None, :, :1].expand(k - 1, m, 1)).squeeze(2)  # (k-1) x m
            zk = out.gather(2, c[:, 1:].T.unsqueeze(2)).squeeze(2)  # (k-1) x m
            diff = zk - zy  # f_k − f_y, negative while still correct
            grads = torch.autograd.grad(diff.sum(), rep)[0].view(k - 1, m, *xa.shape[1:])
            with torch.no_grad():
                wflat = grads.flatten(2)
                dual = wflat.abs().sum(2) if self.norm == "linf" else wflat.norm(dim=2)  # (k-1) x m
                best = (diff.abs() / (dual + TINY)).argmin(0)  # nearest linearised boundary
                ar = torch.arange(m, device=x.device)
                w, f = grads[best, ar], diff[best, ar].abs().view(-1, *([1] * (x.ndim - 1)))
                if self.norm == "linf":
                    r = (f + 1e-4) / (flat_l1(w) + TINY) * w.sign()
                else:
                    r = (f + 1e-4) / (flat_norm(w, "l2") ** 2 + TINY) * w
                r_tot[idx] += r
                x_adv[idx] = (x[idx] + (1 + self.overshoot) * r_tot[idx]).clamp(*self.bounds)
                # keep only what the bounds let through, so the next linear step (and the
                # overshoot) act on the point really reached, not on clipped-away perturbation
                r_tot[idx] = (x_adv[idx] - x[idx]) / (1 + self.overshoot)
                still = model(x_adv[idx]).float().argmax(1) == y[idx]
                active[idx] = still
        return x_adv
