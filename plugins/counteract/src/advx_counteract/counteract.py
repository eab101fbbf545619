"""Counteracting adversarial perturbations — paper 004 ("Towards counteracting adversarial
perturbations to resist adversarial examples"), Section 3, Algorithm 1 and Eq. 3."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import attrs
import torch
import torch.nn.functional as F
from torch import nn

from advx.api import InputTransformDefense, streams


def draw_labels(pred: torch.Tensor, num_classes: int, n: int, g: Any) -> torch.Tensor:
    """For each sample, ``n`` distinct labels drawn uniformly from those other than ``pred``
    (B x n). The paper says "randomly select N labels"; excluding the prediction is the SPEC's
    choice (with N = 9 on CIFAR-10 that is every other class)."""
    scores = streams.uniform(g, (len(pred), num_classes)).to(pred.device)
    scores.scatter_(1, pred[:, None], -1.0)  # the prediction is never drawn
    return scores.topk(n, dim=1).indices


def counter_perturbation(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, alpha: float, mu: float,
                         targeted: bool) -> torch.Tensor:
    """Π_C(Σ_i η_i): one signed-gradient step per label (towards it if ``targeted``, away from it
    otherwise), all labels in one batched forward/backward, the sum clipped to [−μ, μ]."""
    b, n = labels.shape
    xr = x.detach().unsqueeze(1).expand(b, n, *x.shape[1:]).reshape(b * n, *x.shape[1:]).requires_grad_(True)
    with torch.enable_grad():
        loss = F.cross_entropy(model(xr).float(), labels.reshape(-1), reduction="sum")
        (grad,) = torch.autograd.grad(loss, xr)
    step = grad.sign().view(b, n, *x.shape[1:])
    eta = (-alpha if targeted else alpha) * step  # targeted: descend the CE of label l_i
    return eta.sum(1).clamp(-mu, mu)


@attrs.frozen
class Counteract(InputTransformDefense):
    """Counteract adversarial perturbations (paper 004, Algorithm 1): draw N labels other than
    the current prediction, take one signed-gradient step of size α for each — targeted
    (towards the label, the paper's default) or untargeted (away from it) — sum, clip to the
    linf ball of radius μ, add, clip to [0, 1], classify. Gradients always come from the
    *undefended* model, even inside a chain. Defaults α 4/255, μ 8/255, N 9 (paper Section 4).

    It optimises its input at inference time: attacked adaptively it is treated with BPDA
    (the counter-step is a constant on the backward pass) and EOT over the label draws.
    """

    name: ClassVar[str] = "counteract"
    per_sample_streams: ClassVar[bool] = True
    randomized: ClassVar[bool] = True
    differentiable: ClassVar[bool] = False
    optimizes_input: ClassVar[bool] = True
    alpha: float = attrs.field(default=4 / 255, validator=attrs.validators.ge(0))
    mu: float = attrs.field(default=8 / 255, validator=attrs.validators.ge(0))
    n: int = attrs.field(default=9, validator=attrs.validators.ge(1))
    mode: Literal["targeted", "untargeted"] = attrs.field(
        default="targeted", validator=attrs.validators.in_(["targeted", "untargeted"]))

    def transform(self, x: torch.Tensor, model: nn.Module, generator: torch.Generator | None,
                  context: dict[str, Any]) -> torch.Tensor:
        with torch.no_grad():
            logits = model(x.detach()).float()
        k = logits.shape[1]
        if self.n > k - 1:
            raise ValueError(f"counteract: n = {self.n} labels requested but only {k - 1} differ from the prediction")
        labels = draw_labels(logits.argmax(1), k, self.n, generator)
        delta = counter_perturbation(model, x, labels, self.alpha, self.mu, self.mode == "targeted")
        return (x + delta.to(x.dtype)).clamp(0, 1)
