"""Intelligent (label-aware) mixup — Agarwal, Vatsa, Singh & Ratha, "Intelligent and adaptive
mixup technique for adversarial robustness" (paper 000), Section 3, Eq. 2 and Section 4.1."""

from __future__ import annotations

from typing import Any, ClassVar, Literal

import attrs
import numpy as np
import torch

from advx.api import AugmentationBase, Batch, as_float, frozen_copy, one_hot


def predict(model: torch.nn.Module, x: torch.Tensor, batch_size: int) -> torch.Tensor:
    was = model.training
    model.eval()
    with torch.no_grad():
        out = torch.cat([model(x[i:i + batch_size]).argmax(1) for i in range(0, len(x), batch_size)])
    model.train(was)
    return out


@attrs.define
class IntelligentMixup(AugmentationBase):
    """For each chosen training image x (label y): a noisy copy x' = x + N(0, σ²) (clipped to
    [0, 1]), its label y' *predicted by the model being defended* (a frozen copy taken at setup,
    or the current model each batch with ``labels_from = 'current'``), λ ~ Beta(α, α) per image,
    x̃ = λx + (1−λ)x', ỹ = λ·onehot(y) + (1−λ)·onehot(y'). The mixed samples are *added* to the
    training set (``ratio`` of its size) and the model fine-tuned — paper: σ 0.05 (GN05) or 0.08
    (GN08), α = 8, then 30 epochs of Adam at 1e-4, batch 32 (set those in the [[train]] table,
    with ``init = "base"``). Plain mixup (the paper's Eq. 1) is the mixup plugin's ``mixup``."""

    name: ClassVar[str] = "intelligent-mixup"
    sigma: float = attrs.field(default=0.05, validator=attrs.validators.ge(0))
    alpha: float = attrs.field(default=8.0, validator=attrs.validators.gt(0))
    ratio: float = attrs.field(default=1.0, validator=[attrs.validators.gt(0), attrs.validators.le(1)])
    labels_from: Literal["frozen", "current"] = attrs.field(
        default="frozen", validator=attrs.validators.in_(["frozen", "current"]))
    clip: bool = True
    batch_size: int = 512

    def setup(self, ctx: Any) -> None:
        n = len(ctx.x_train)
        m = max(1, round(self.ratio * n))
        g = ctx.generator
        idx = torch.randperm(n, generator=g)[:m].to(ctx.x_train.device)
        x = as_float(ctx.x_train[idx])
        noisy = x + self.sigma * torch.randn(x.shape, generator=g).to(x)
        if self.clip:
            noisy = noisy.clamp(0, 1)
        frozen = frozen_copy(ctx.model)
        y_pred = predict(frozen, noisy, self.batch_size)
        rng = np.random.default_rng(int(torch.randint(0, 2**62, (1,), generator=g)))
        lam = torch.from_numpy(rng.beta(self.alpha, self.alpha, size=m).astype(np.float32)).to(x.device)
        lam_x = lam.view(-1, *([1] * (x.ndim - 1)))
        x_mix = lam_x * x + (1 - lam_x) * noisy
        y_mix = lam[:, None] * ctx.y_train[idx] + (1 - lam[:, None]) * one_hot(y_pred, ctx.num_classes).to(x.device)
        ctx.state["intelligent_mixup"] = {"n_original": n, "index": idx, "noisy": noisy, "lam": lam,
                                          "predicted": y_pred, "y": ctx.y_train[idx]}
        ctx.x_train = torch.cat([as_float(ctx.x_train), x_mix])
        ctx.y_train = torch.cat([ctx.y_train, y_mix])

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        if self.labels_from == "frozen":
            return batch
        s = ctx.state["intelligent_mixup"]
        rows = (batch.index >= s["n_original"]).nonzero().flatten()
        if len(rows) == 0:
            return batch
        j = batch.index[rows] - s["n_original"]
        y_pred = predict(ctx.model, s["noisy"][j], self.batch_size)
        lam = s["lam"][j][:, None]
        y = batch.y.clone()
        y[rows] = lam * s["y"][j] + (1 - lam) * one_hot(y_pred, ctx.num_classes).to(y)
        return Batch(batch.x, y, batch.index)
