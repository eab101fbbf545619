"""APGD-T — the targeted member of AutoAttack: Croce & Hein, "Reliable evaluation of adversarial
robustness with an ensemble of diverse parameter-free attacks", ICML 2020
(https://arxiv.org/abs/2003.01690), Section 4 ("APGD-T") and Eq. 7 (targeted DLR loss)."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import torch

from advx.api import progress_part, sample_rows, streams

from .apgd import APGD
from .ops import success


def top_other_classes(logits: torch.Tensor, y: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` highest-scoring classes other than ``y``, best first (N x k): APGD-T's and
    FAB-T's target order (AutoAttack takes the 2nd, 3rd, ... largest clean logits)."""
    masked = logits.float().scatter(1, y[:, None], float("-inf"))
    return masked.topk(min(k, logits.shape[1] - 1), dim=1).indices


def malt_classes(model, x: torch.Tensor, y: torch.Tensor, k: int, norm: str, candidates: int = 100,
                 logits: torch.Tensor | None = None) -> torch.Tensor:
    """MALT's target order — Melamed, Yehudai & Shamir, "MALT Powers Up Adversarial Attacks",
    NeurIPS 2024 (https://arxiv.org/abs/2407.02240), Section 3: among the ``candidates`` classes
    with the largest clean logits, rank t by (z_y − z_t) / ‖∇(z_y − z_t)‖_q, the distance to t's
    decision boundary were the network linear around x (q: the dual of the threat model's norm),
    and return the ``k`` nearest (N x k). The logits rank a class by confidence; this ranks it by
    how far the input must move, which is what a bounded attack needs. Cost: one forward and one
    backward pass per candidate (and a forward for the ``logits``, unless given)."""
    if logits is None:
        with torch.no_grad():
            logits = model(x).float()
    pool = top_other_classes(logits, y, candidates)
    scores = []
    for j in range(pool.shape[1]):
        xg = x.detach().requires_grad_(True)
        z = model(xg).float()
        margin = z.gather(1, y[:, None]).squeeze(1) - z.gather(1, pool[:, j:j + 1]).squeeze(1)
        (grad,) = torch.autograd.grad(margin.sum(), xg)
        flat = grad.flatten(1)
        dual = flat.abs().sum(1) if norm == "linf" else flat.norm(dim=1) if norm == "l2" else flat.abs().amax(1)
        scores.append(margin.detach() / dual.clamp(min=1e-12))
    order = torch.stack(scores, 1).argsort(1)[:, :k]
    return pool.gather(1, order)


@attrs.frozen
class APGDTargeted(APGD):
    """APGD-T — Croce & Hein, ICML 2020 (https://arxiv.org/abs/2003.01690). Distance: linf or l2.

    AutoPGD on the targeted DLR loss −(z_y − z_t)/(z_π1 − (z_π3 + z_π4)/2), run once per target
    class t among the ``targets`` classes with the largest clean logits (default 9: every other
    class of a 10-class problem). Each run attacks only the samples still robust, and a sample
    counts as broken as soon as it is misclassified (any class), as in AutoAttack. With an
    explicit ``target=`` it is plain targeted APGD towards that class.
    Arguments: eps (8/255), steps (100), norm ('linf'|'l2'), targets (9), restarts per target (1),
    loss ('dlr' needs ≥ 4 classes; 'ce' steers −CE towards t), ranking ('logits': AutoAttack's
    order; 'malt': MALT's, ``malt_classes``). Cost: up to targets x restarts x (steps + 1)
    forward+backward passes, on the still-robust samples only (MALT: one more per candidate class).
    Example: ``advx.create("attack", "apgd-t", eps="8/255")(model, x, y)``.
    """

    name: ClassVar[str] = "apgd-t"
    loss: Literal["ce", "dlr"] = attrs.field(default="dlr", validator=attrs.validators.in_(["ce", "dlr"]))
    targets: int = attrs.field(default=9, validator=attrs.validators.ge(1))
    ranking: Literal["logits", "malt"] = attrs.field(default="logits",
                                                      validator=attrs.validators.in_(["logits", "malt"]))

    def perturb(self, model, x, y, *, target, generator, eps):
        if target is not None:
            return super().perturb(model, x, y, target=target, generator=generator, eps=eps)
        with torch.no_grad():
            logits = model(x).float()
        fooled = success(logits, y, None)
        x_adv = x.clone()
        if self.ranking == "malt":
            todo = (~fooled).nonzero().flatten()
            ranked = top_other_classes(logits, y, self.targets)  # the fooled ones are never attacked
            if len(todo):
                with sample_rows(todo):
                    ranked[todo] = malt_classes(model, x[todo], y[todo], self.targets, self.norm, logits=logits[todo])
            classes = ranked.T
        else:
            classes = top_other_classes(logits, y, self.targets).T
        for i, t in enumerate(classes):
            for r in range(self.restarts):
                todo = (~fooled).nonzero().flatten()
                if len(todo) == 0:
                    return x_adv
                part = progress_part(f"target {i + 1}/{len(classes)}", i * self.restarts + r,
                                     len(classes) * self.restarts)
                with part, sample_rows(todo):
                    cand, ok = self.run_once(model, x[todo], y[todo], t[todo], streams.subset(generator, todo), eps[todo],
                                             any_misclassification=True)
                x_adv[todo[ok]] = cand[ok]
                fooled[todo[ok]] = True
        return x_adv
