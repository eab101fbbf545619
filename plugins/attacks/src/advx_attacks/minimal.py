"""DeepFool (L2 and linf), the minimal-perturbation attack that linearises the classifier (CW-L2 is in cw.py)."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import torch
import torch.nn.functional as F

from advx.api import AttackBase, report_progress

from .ops import TINY, flat_norm


def flat_l1(t: torch.Tensor) -> torch.Tensor:
    return t.flatten(1).abs().sum(1).view(-1, *([1] * (t.ndim - 1)))


@attrs.frozen
class DeepFool(AttackBase):
    """DeepFool — Moosavi-Dezfooli et al., "DeepFool: a simple and accurate method to fool deep
    neural networks", CVPR 2016 (https://arxiv.org/abs/1511.04599). Distance: L2 or linf.

    Linearise the classifier around the current point, step to the nearest linearised decision
    boundary among the ``candidates`` top classes, repeat until the label flips (checked per
    sample: finished samples stop) or ``steps`` is reached; the total perturbation is scaled by
    (1 + overshoot). The gradients of all candidate logit differences come from one backward
    pass over a (candidates x N) batch. Works on logits.

    ``clip`` = "point" (the default) follows the paper (Algorithm 2, Section 3): the steps r_i
    accumulate into r_tot, which keeps whatever the pixel bounds cut off; each iterate is
    x + (1 + overshoot)·r_tot clipped to the bounds, the point that is linearised, checked and
    returned (as the authors' and cleverhans' reference code do). "perturbation" also cuts r_tot
    back to what the bounds let through after every step (the older advx behaviour): on images
    whose pixels sit at 0 or 1 the next steps then push into the bound again and stall.
    Arguments: steps (50; paper 002 sweeps 1..5), overshoot (0.02), norm ('l2'|'linf'),
    candidates (10), clip ('point'|'perturbation'). Untargeted only.
    """

    name: ClassVar[str] = "deepfool"
    per_sample_streams: ClassVar[bool] = True
    minimal: ClassVar[bool] = True
    supports_target: ClassVar[bool] = False
    steps: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    overshoot: float = attrs.field(default=0.02, validator=attrs.validators.ge(0))
    norm: Literal["l2", "linf"] = attrs.field(default="l2", validator=attrs.validators.in_(["l2", "linf"]))
    candidates: int = attrs.field(default=10, validator=attrs.validators.ge(2))
    clip: Literal["point", "perturbation"] = attrs.field(default="point",
                                                         validator=attrs.validators.in_(["point", "perturbation"]))

    def perturb(self, model, x, y, *, target, generator, eps):
        with torch.no_grad():
            logits0 = model(x).float()
        k = min(self.candidates, logits0.shape[1])
        # candidate classes: the true class first, then the top others by clean logit
        others = logits0.masked_fill(F.one_hot(y, logits0.shape[1]).bool(), float("-inf")).topk(k - 1, 1).indices
        cls = torch.cat([y[:, None], others], 1)  # n x k
        r_tot = torch.zeros_like(x)
        active = logits0.argmax(1) == y
        for step in range(self.steps):
            report_progress(step, self.steps)
            idx = active.nonzero().flatten()
            if len(idx) == 0:
                break
            xa = self._iterate(x[idx], r_tot[idx]).detach().requires_grad_(True)
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
                point = self._iterate(x[idx], r_tot[idx])
                if self.clip == "perturbation":  # keep only what the bounds let through
                    r_tot[idx] = (point - x[idx]) / (1 + self.overshoot)
                active[idx] = model(point).float().argmax(1) == y[idx]
        return self._iterate(x, r_tot)

    def _iterate(self, x: torch.Tensor, r_tot: torch.Tensor) -> torch.Tensor:
        """The point a step linearises at, checks and returns: x + (1 + overshoot)·r_tot, clipped."""
        return (x + (1 + self.overshoot) * r_tot).clamp(*self.bounds)
