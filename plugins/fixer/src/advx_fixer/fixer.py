"""Training fixer modules on a frozen base model — paper 003 ("Use of small auxiliary networks
and scarce data to improve the adversarial robustness of deep learning models"), Section 3."""

from __future__ import annotations

import hashlib
from typing import Any, ClassVar, Literal

import attrs
import torch
from torch import nn

from advx.api import AugmentationBase, Batch, as_float, focal_loss, progress

from .modules import Fixed, FixerModule, NonLocalDenoise, channels_of, replace, set_enabled


def probe_channels(model: nn.Module, layers: list[str], input_shape: tuple[int, ...] | None) -> dict[str, int]:
    """Channels of each layer's output, from one forward pass of a dummy input (if the shape is known)."""
    if not input_shape:
        return {}
    seen: dict[str, tuple[int, ...]] = {}
    hooks = [model.get_submodule(n).register_forward_hook(lambda m, i, o, n=n: seen.__setitem__(n, tuple(o.shape)))
             for n in layers]
    was = model.training
    model.eval()
    try:
        with torch.no_grad():
            p = next(model.parameters(), None)
            model(torch.zeros(1, *input_shape, device=p.device if p is not None else "cpu"))
    finally:
        model.train(was)
        for h in hooks:
            h.remove()
    flat = [n for n, shape in seen.items() if len(shape) != 4]
    if flat:
        raise ValueError(f"fixer modules need convolutional feature maps (N, C, H, W); layer {flat[0]!r} "
                         f"outputs shape {seen[flat[0]]}")
    return {n: shape[1] for n, shape in seen.items()}


def _digest(*tensors: torch.Tensor) -> str:
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


@attrs.define
class FixerTraining(AugmentationBase):
    """Fixer modules (paper 003, Section 3): freeze the base model, insert φ after each named
    layer (output ReLU(h + δ·φ(h)); ρ, δ, activation ζ and placement are parameters; δ = 0 gives
    the base model back), and train only the fixers with

        focal-CE(y, gφ(x)) + focal-CE(y, gφ(x_adv)) + λ·Σ_i [d(h_i^δ(x), h_i^0(x)) + d(h_i^δ(x_adv), h_i^0(·))]

    where h^δ is the fixed feature after fixer i and h^0 the base model's. The SPEC reads the
    garbled Eq. 4 as pulling both towards the *clean* base feature (``distill_to = 'clean'``);
    ``'same'`` is the literal reading (each towards the base feature of its own input).
    ``distance``: the paper says "the standard ℓ2 norm", so the default ``'l2'`` is the per-sample
    ℓ2 norm of the feature difference (batch mean). ``'mse'`` (mean squared difference per feature
    element, PyTorch's "L2 loss") is the scale-free alternative: the ℓ2 norm grows with the feature
    map and can hold the fixers near the identity at λ = 1; both are measured in the plugin README.
    Adversarial examples are crafted on the frozen base with any registered attack (AutoPGD by
    default, as the paper). The paper crafts them on the training images as its data pipeline
    augments them; when the batch is the stored image (no data augmentation) they are crafted once
    at setup and cached on disk (``cache``), since the base does not change; under a data
    augmentation (``data_augment``) each batch is attacked as the pipeline changed it. Best setting "fx-a": linear, δ 1, λ 1; ``layers`` default to the model's feature_layers
    (ResNet-9: res_block_1, res_block_2). Use with ``init = "base"`` on a trained model."""

    name: ClassVar[str] = "fixer"
    layers: tuple[str, ...] = ()
    rho: int = attrs.field(default=4, validator=attrs.validators.ge(1))
    delta: float = 1.0
    activation: Literal["linear", "tanh"] = attrs.field(default="linear",
                                                        validator=attrs.validators.in_(["linear", "tanh"]))
    lam: float = attrs.field(default=1.0, validator=attrs.validators.ge(0))
    focal_gamma: float = 2.0
    attack: str = "apgd"
    params: dict[str, Any] = attrs.field(factory=lambda: {"eps": 8 / 255, "steps": 25})
    cache: bool = True
    distill_to: Literal["clean", "same"] = attrs.field(default="clean", validator=attrs.validators.in_(["clean", "same"]))
    output_relu: bool = True
    distance: Literal["l2", "mse"] = attrs.field(default="l2", validator=attrs.validators.in_(["l2", "mse"]))
    batch_size: int = 256
    _flags: list = attrs.field(factory=list, init=False, repr=False)
    _attack: Any = attrs.field(default=None, init=False, repr=False)

    def make_module(self, channels: int) -> nn.Module:
        return FixerModule(channels, self.rho, self.activation)

    def adapt_model(self, model: nn.Module, info: dict[str, Any]) -> nn.Module:
        layers = list(self.layers or info.get("feature_layers", ()))
        if not layers:
            raise ValueError(f"{self.name}: the model declares no feature_layers; set layers = [...]")
        channels = probe_channels(model, layers, info.get("input_shape"))
        for name in layers:
            block = model.get_submodule(name)
            if isinstance(block, Fixed):
                continue
            c = channels.get(name) or channels_of(block)
            replace(model, name, Fixed(block, self.make_module(c), self.delta, self.output_relu))
        return model

    def fixed_modules(self, model: nn.Module) -> list[Fixed]:
        return [m for m in model.modules() if isinstance(m, Fixed)]

    def setup(self, ctx: Any) -> None:
        model = ctx.model
        if not self.fixed_modules(model):  # used outside the evaluator: insert now
            self.adapt_model(model, {"feature_layers": ctx.feature_layers,
                                     "input_shape": tuple(ctx.x_train.shape[1:])})
        self._flags = [p.requires_grad for p in model.parameters()]
        fixer_params = {id(p) for m in self.fixed_modules(model) for p in m.fixer.parameters()}
        for p in model.parameters():
            p.requires_grad_(id(p) in fixer_params)
        self._attack = ctx.registry.create("attack", self.attack, self.params, where=f"{self.name}.attack")
        augmented = getattr(ctx, "data_augment", "none") != "none"
        ctx.state["fixer_x_adv"] = self.adversarials(ctx) if self.cache and not augmented else None

    def adversarials(self, ctx: Any) -> torch.Tensor:
        """x_adv for every training sample, crafted on the frozen base (fixers disabled)."""
        model = ctx.model
        base_params = [p for n, p in model.named_parameters() if ".fixer." not in f".{n}"]
        key = _digest(*base_params, ctx.x_train[:64].float()) + "-" + hashlib.sha256(
            repr((self.attack, sorted(self.params.items()), len(ctx.x_train), ctx.seed)).encode()).hexdigest()[:12]
        path = ctx.cache_dir / "adversarials" / f"{key}.pt" if ctx.cache_dir is not None else None
        if path is not None and path.is_file():
            return torch.load(path, map_location=ctx.x_train.device, weights_only=True)
        set_enabled(model, False)
        out = []
        try:
            g = torch.Generator().manual_seed(ctx.seed)
            bar = progress(total=len(ctx.x_train), desc=f"{self.name}: {self.attack} on the base", unit="img")
            for i in range(0, len(ctx.x_train), self.batch_size):
                x = as_float(ctx.x_train[i:i + self.batch_size])
                out.append(self._attack(model, x, ctx.y_train[i:i + self.batch_size].argmax(1), generator=g))
                bar.update(len(x))
            bar.close()
        finally:
            set_enabled(model, True)
        x_adv = torch.cat(out)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(x_adv.cpu(), path)
        return x_adv

    def features(self, model: nn.Module, x: torch.Tensor, enabled: bool) -> tuple[torch.Tensor, list[torch.Tensor]]:
        feats: list[torch.Tensor] = []
        hooks = [m.register_forward_hook(lambda mod, i, o: feats.append(o)) for m in self.fixed_modules(model)]
        set_enabled(model, enabled)
        try:
            logits = model(x)
        finally:
            set_enabled(model, True)
            for h in hooks:
                h.remove()
        return logits, feats

    def augment(self, batch: Batch, ctx: Any) -> Batch:
        cached = ctx.state.get("fixer_x_adv")
        if cached is not None:
            ctx.state["fixer_batch_adv"] = cached[batch.index.to(cached.device)].to(batch.x.device)
        else:  # no cache, or the data pipeline augments: attack the images as trained on
            g = ctx.generator
            set_enabled(ctx.model, False)
            try:
                ctx.state["fixer_batch_adv"] = self._attack(ctx.model, batch.x, batch.y.argmax(1), generator=g)
            finally:
                set_enabled(ctx.model, True)
        return batch

    def loss(self, model: nn.Module, batch: Batch, ctx: Any) -> torch.Tensor:
        model.eval()  # the frozen base keeps its batch-norm statistics; fixers have none
        x_adv = ctx.state["fixer_batch_adv"]
        with torch.no_grad():
            _, base_clean = self.features(model, batch.x, enabled=False)
            base_adv = self.features(model, x_adv, enabled=False)[1] if self.distill_to == "same" else base_clean
        logits_c, fixed_c = self.features(model, batch.x, enabled=True)
        logits_a, fixed_a = self.features(model, x_adv, enabled=True)
        loss = focal_loss(logits_c, batch.y, self.focal_gamma) + focal_loss(logits_a, batch.y, self.focal_gamma)
        if self.lam:
            dist = sum(self.feature_distance(fc, b0) + self.feature_distance(fa, b1)
                       for fc, fa, b0, b1 in zip(fixed_c, fixed_a, base_clean, base_adv))
            loss = loss + self.lam * dist
        return loss

    def feature_distance(self, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
        """Batch mean of the per-sample ℓ2 distance (``'l2'``, the paper's words), or the mean
        squared difference per feature element (``'mse'``, independent of the feature map's size)."""
        if self.distance == "mse":
            return (a - b).pow(2).mean()
        return (a - b).flatten(1).norm(dim=1).mean()

    def teardown(self, ctx: Any) -> None:
        for p, flag in zip(ctx.model.parameters(), self._flags):
            p.requires_grad_(flag)
        set_enabled(ctx.model, True)


@attrs.define
class DenoisingBlocks(FixerTraining):
    """Baseline of paper 003: feature-denoising blocks (Xie et al. 2019; non-local means without
    embedding, 1x1 conv, residual) in place of fixers, trained the same way on the frozen base
    (δ scales the residual branch)."""

    name: ClassVar[str] = "denoise-blocks"
    lam: float = 0.0

    def make_module(self, channels: int) -> nn.Module:
        return NonLocalDenoise(channels)
