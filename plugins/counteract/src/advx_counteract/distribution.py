"""The distribution classifier — Kou, Lee, Chang & Ng, "Enhancing transformation-based defenses
against adversarial attacks with a distribution classifier", ICLR 2020 — paper 003's "drn"
baseline (Section 4: N = 50 random resize-and-pad transformations of Xie et al. 2018, a Gaussian
KDE of each class's softmax value over them, a Distribution Regression Network on those densities).

The DRN (Kou, Lee & Ng, "A compact network learning model for distribution regression", Neural
Networks 2019) encodes a whole distribution in each node, on ``bins`` points of [0, 1]. Node k of
the next layer is

    P_k(s) ∝ exp(B_k(s)) · Π_j Σ_t exp(−w_kj (s − t)²) P_j(t),
    B_k(s) = −b_q,k (s − λ_q,k)² − b_a,k |s − λ_a,k|,

computed in the log domain. The output layer has one node per class; a class's score is the mean
of its output distribution, scaled by a learned temperature into logits.

Kou et al. train the DRN on the densities of transformed *clean* training images only; here it is
fitted when the defence is built (``wrap``) on the variants' ``train_fraction`` of the training
split (paper 003 trains every baseline on 10 %) and cached under the run's cache folder, keyed by
the base model's weights and these settings, so a resumed run never refits it. Choices where the
papers are silent: 100 bins, KDE bandwidth 0.05, one hidden layer of 10 nodes, Adam at 1e-2 for 20
epochs, resize scales 22/32 to 30/32 as paper 004's Xie et al. defence.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, ClassVar

import attrs
import torch
from torch import nn

from advx.api import as_float, load_checkpoint, module_digest, progress, save_checkpoint, streams, training_subset

from . import randomized
from .randomized import RandomResizePad, _check_scales


def bin_centres(bins: int, device: torch.device | None = None) -> torch.Tensor:
    return (torch.arange(bins, dtype=torch.float32, device=device) + 0.5) / bins


def softmax_densities(probs: torch.Tensor, bins: int, bandwidth: float) -> torch.Tensor:
    """Gaussian KDE of each class's softmax value over the draws: (B, N, C) -> (B, C, bins), each
    row a distribution over the bin centres of [0, 1]. Differentiable in ``probs``."""
    gap = probs.unsqueeze(-1) - bin_centres(bins, probs.device)  # B, N, C, bins
    density = torch.exp(-0.5 * (gap / bandwidth) ** 2).sum(1)
    return density / density.sum(-1, keepdim=True)


class DRNLayer(nn.Module):
    """One DRN layer: ``n_in`` distributions -> ``n_out`` distributions, all on ``bins`` points."""

    def __init__(self, n_in: int, n_out: int, bins: int, generator: torch.Generator) -> None:
        super().__init__()

        def uniform(lo: float, hi: float, *shape: int) -> nn.Parameter:
            return nn.Parameter(lo + (hi - lo) * torch.rand(*shape, generator=generator))

        self.weight = uniform(-0.1, 0.1, n_out, n_in)
        self.bias_quad, self.bias_abs = uniform(-0.1, 0.1, n_out, 1), uniform(-0.1, 0.1, n_out, 1)
        self.centre_quad, self.centre_abs = uniform(0.0, 1.0, n_out, 1), uniform(0.0, 1.0, n_out, 1)
        s = bin_centres(bins)
        self.register_buffer("gap2", (s[:, None] - s[None, :]) ** 2, persistent=False)  # (s_out, s_in)
        self.register_buffer("s", s, persistent=False)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        kernel = torch.exp(-self.weight[:, :, None, None] * self.gap2)  # n_out, n_in, s_out, s_in
        mixed = torch.einsum("kjot,bjt->bkjo", kernel, p).clamp_min(1e-30)
        bias = -self.bias_quad * (self.s - self.centre_quad) ** 2 - self.bias_abs * (self.s - self.centre_abs).abs()
        return torch.softmax(mixed.log().sum(2) + bias, dim=-1)


class DRN(nn.Module):
    """Distribution regression network classifier: C input densities -> C class logits."""

    def __init__(self, num_classes: int, bins: int, hidden: tuple[int, ...], seed: int) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        sizes = [num_classes, *hidden, num_classes]
        self.layers = nn.ModuleList(DRNLayer(a, b, bins, g) for a, b in zip(sizes, sizes[1:]))
        self.log_scale = nn.Parameter(torch.tensor(2.3))  # logits = mean · e^log_scale (≈ 10 at first)
        self.register_buffer("s", bin_centres(bins), persistent=False)

    def forward(self, p: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            p = layer(p)
        return (p * self.s).sum(-1) * self.log_scale.exp()


class DistributionClassified(nn.Module):
    """``model`` behind N random transformations, per-class softmax densities and a DRN.

    Every call draws N transformations per image, keyed by the image's content and the seed
    (``advx.streams.draw_streams``: the same in any batch; new draws for each query while it is
    attacked, ``advx.streams.DrawLedger``); the
    whole pipeline is differentiable, so an adaptive attack gets the gradient of the average over
    the N draws (EOT is built in)."""

    def __init__(self, model: nn.Module, drn: DRN, transform: RandomResizePad, draws: int, bins: int,
                 bandwidth: float, max_batch: int, seed: int) -> None:
        super().__init__()
        self.model, self.drn, self.transform = model, drn, transform
        self.draws, self.bins, self.bandwidth, self.max_batch = draws, bins, bandwidth, max_batch
        self.seed = seed
        self.attacking = False  # set_attacking: each query then takes new draws
        self.ledger = streams.DrawLedger()
        self.train(model.training)

    def reseed(self, seed: int) -> None:
        self.seed = seed
        self.ledger.reset()

    @property
    def averages_draws(self) -> int:
        """Draws every call averages: to the sanity checks, an adaptive attack on it is EOT."""
        return self.draws

    def densities(self, x: torch.Tensor) -> torch.Tensor:
        per_pass = max(1, min(self.draws, self.max_batch // max(1, len(x))))
        seed, first = self.ledger.starts(x, self.seed, self.draws, self.attacking)
        probs, done = [], 0
        while done < self.draws:
            k = min(per_pass, self.draws - done)
            xr = x.repeat(k, *([1] * (x.ndim - 1)))
            xt = self.transform.transform(xr, self.model, streams.draw_streams(x, seed, first + done, k), {})
            probs.append(torch.softmax(self.model(xt).float(), dim=1).view(k, len(x), -1))
            done += k
        return softmax_densities(torch.cat(probs).transpose(0, 1), self.bins, self.bandwidth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.drn(self.densities(x))


@attrs.frozen
class DistributionClassifier:
    """Kou et al. (ICLR 2020)'s distribution classifier, paper 003's "drn" baseline: N = ``draws``
    random resize-and-pad transformations (Xie et al. 2018, scales ``min_scale``..``max_scale``),
    a Gaussian KDE (``bandwidth``) of each class's softmax value on ``bins`` points, and a DRN
    (``hidden`` node counts) fitted on clean training images when the defence is built:
    ``train_fraction`` of the training split (paper 003: the 10 % the fixers see), ``epochs`` of
    Adam at ``lr``. Cached under the run's cache folder; attacked adaptively it is differentiable
    end to end, its N draws acting as EOT."""

    name: ClassVar[str] = "distribution-classifier"
    draws: int = attrs.field(default=50, validator=attrs.validators.ge(1))
    min_scale: float = attrs.field(default=22 / 32, validator=_check_scales)
    max_scale: float = attrs.field(default=30 / 32, validator=_check_scales)
    bins: int = attrs.field(default=100, validator=attrs.validators.ge(2))
    bandwidth: float = attrs.field(default=0.05, validator=attrs.validators.gt(0))
    hidden: tuple[int, ...] = attrs.field(default=(10,), converter=tuple)
    train_fraction: float = attrs.field(default=0.1, validator=[attrs.validators.gt(0), attrs.validators.le(1)])
    epochs: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    lr: float = attrs.field(default=1e-2, validator=attrs.validators.gt(0))
    batch_size: int = attrs.field(default=64, validator=attrs.validators.ge(1))
    #: images per forward pass of the base model (the batch times the draws it holds)
    max_batch: int = attrs.field(default=4096, validator=attrs.validators.ge(1))

    @property
    def averages_draws(self) -> int:
        """Draws every call averages (EOT built in): the plan counts them as the pipeline's EOT."""
        return self.draws

    def __attrs_post_init__(self) -> None:
        if self.min_scale > self.max_scale:
            raise ValueError(f"min_scale {self.min_scale} is above max_scale {self.max_scale}")

    def wrap(self, model: nn.Module, context: dict[str, Any] | None = None) -> nn.Module:
        context = context or {}
        if context.get("train_x") is None:
            raise ValueError("distribution-classifier fits its DRN on clean training images (context['train_x'])")
        seed = int(context.get("seed", 0))
        device = next(model.parameters()).device
        drn = DRN(int(context["num_classes"]), self.bins, tuple(self.hidden), seed).to(device)
        pipeline = DistributionClassified(model, drn, RandomResizePad(self.min_scale, self.max_scale), self.draws,
                                          self.bins, self.bandwidth, self.max_batch, seed)
        cache = context.get("cache_dir")
        path = None if cache is None else Path(cache) / f"drn-{self._key(model, context)}.pt"
        if path is not None and path.is_file():
            drn.load_state_dict(load_checkpoint(path))
        else:
            self.fit(pipeline, context, seed)
            if path is not None:
                save_checkpoint(drn, path, {"defense": self.name, **attrs.asdict(self)})
        drn.eval().requires_grad_(False)
        return pipeline

    def _key(self, model: nn.Module, context: dict[str, Any]) -> str:
        """The fitted DRN's cache key: these settings, the base model's weights, the training subset
        and this module's code (a fit made by other code is never reused)."""
        index = context.get("train_index")
        code = hashlib.sha256(b"".join(Path(f).read_bytes() for f in (__file__, randomized.__file__))).hexdigest()
        spec = {"settings": attrs.asdict(self), "model": module_digest(model), "seed": context.get("seed", 0), "code": code,
                "train": None if index is None else hashlib.sha256(index.cpu().numpy().tobytes()).hexdigest(),
                "n_train": len(context["train_y"])}
        return hashlib.sha256(json.dumps(spec, sort_keys=True, default=str).encode()).hexdigest()[:16]

    def fit(self, pipeline: DistributionClassified, context: dict[str, Any], seed: int) -> None:
        """Train the DRN on the densities of transformed clean training images (Kou et al. §3)."""
        x_all, y_all = context["train_x"], context["train_y"]
        index = context.get("train_index")
        index = torch.arange(len(y_all)) if index is None else index
        index = training_subset(y_all, index, self.train_fraction, seed).to(y_all.device)
        was_training = pipeline.model.training
        pipeline.model.eval()
        densities = []
        chunk = max(1, self.max_batch // self.draws)
        bar = progress(total=len(index), desc=f"densities of {self.draws} draws", unit="image")
        with torch.no_grad():
            for s in range(0, len(index), chunk):
                densities.append(pipeline.densities(as_float(x_all[index[s:s + chunk]])))
                bar.update(len(densities[-1]))
        bar.close()
        pipeline.model.train(was_training)
        p, y = torch.cat(densities), y_all[index].long()
        drn = pipeline.drn.train()
        opt = torch.optim.Adam(drn.parameters(), lr=self.lr)
        g = torch.Generator().manual_seed(seed)
        steps = -(-len(y) // self.batch_size)
        bar = progress(total=self.epochs * steps, desc="fit distribution classifier", unit="batch")
        try:
            for _ in range(self.epochs):
                order = torch.randperm(len(y), generator=g).to(y.device)
                for b in range(steps):
                    pick = order[b * self.batch_size:(b + 1) * self.batch_size]
                    loss = nn.functional.cross_entropy(drn(p[pick]), y[pick])
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    bar.update(1)
                    bar.set_postfix(loss=f"{loss.item():.3f}")
        finally:
            bar.close()
