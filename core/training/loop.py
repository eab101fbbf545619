"""The trainer: optimiser, schedule, loss and the TrainingAugmentation hooks in order.
Deterministic on CPU for a given seed."""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from ..config import TrainSettings
from ..data.bundle import DataBundle, as_float
from ..distributed import Dist, split_batch
from ..errors import ConfigError
from ..losses import make_criterion, one_hot
from ..progress import progress
from ..protocols import Batch


@attrs.define
class TrainContext:
    """What augmentations see. ``x_train``/``y_train`` (soft labels) may be replaced or grown
    in ``setup`` (e.g. intelligent mixup adds mixed samples)."""

    model: nn.Module
    x_train: torch.Tensor
    y_train: torch.Tensor
    num_classes: int
    device: torch.device
    settings: TrainSettings
    seed: int
    registry: Any
    generator: torch.Generator
    criterion: Any
    feature_layers: tuple[str, ...] = ()
    cache_dir: Path | None = None
    data_augment: str = "none"  # what the data pipeline does to each batch before augment() sees it
    epoch: int = 0
    step: int = 0
    state: dict[str, Any] = attrs.field(factory=dict)


def spec_hash(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _optimizer(params: list[nn.Parameter], s: TrainSettings) -> torch.optim.Optimizer:
    if s.optimizer == "sgd":
        return torch.optim.SGD(params, lr=s.lr, momentum=s.momentum, weight_decay=s.weight_decay)
    if s.optimizer == "adamw":
        return torch.optim.AdamW(params, lr=s.lr, weight_decay=s.weight_decay)
    return torch.optim.Adam(params, lr=s.lr, weight_decay=s.weight_decay)


def _scheduler(opt: torch.optim.Optimizer, s: TrainSettings, steps_per_epoch: int):
    total = max(1, s.epochs * steps_per_epoch)
    if s.schedule == "onecycle":
        return torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=s.lr, total_steps=total)
    if s.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
    if s.schedule == "step":
        return torch.optim.lr_scheduler.StepLR(opt, step_size=s.step_size * steps_per_epoch, gamma=s.gamma)
    if s.schedule == "multistep":
        return torch.optim.lr_scheduler.MultiStepLR(opt, [m * steps_per_epoch for m in s.milestones], gamma=s.gamma)
    return None


def create_image_augmentation(registry: Any, name: str, where: str) -> Any:
    """The data-pipeline step named ``name`` (None for "none"), checked to be an image
    augmentation (``augment_images``) rather than a training recipe."""
    if name == "none":
        return None
    aug = registry.create("training_augmentation", name, {}, where=where)
    if not callable(getattr(aug, "augment_images", None)):
        kinds = [n for n in registry.names("training_augmentation")
                 if callable(getattr(registry.get("training_augmentation", n), "augment_images", None))]
        raise ConfigError(f"{where}: {name!r} is a training recipe, not an image augmentation; list it in a "
                          f"variant's augment = [...], or name one of: none, {', '.join(kinds)}")
    return aug


def adapt_model(model: nn.Module, augmentations: list[Any], ctx_info: dict[str, Any]) -> nn.Module:
    """Let augmentations change the architecture (e.g. insert fixer modules) — the same call is
    made before training and before loading a cached checkpoint, so both build the same net."""
    for aug in augmentations:
        fn = getattr(aug, "adapt_model", None)
        if fn is not None:
            model = fn(model, ctx_info) or model
    return model


def _average_gradients(params: list[nn.Parameter], dist: Dist) -> None:
    """What DDP's reducer does, by hand, for losses that recipes compute themselves."""
    import torch.distributed as tdist

    for p in params:
        if p.grad is None:
            p.grad = torch.zeros_like(p)
        tdist.all_reduce(p.grad)
        p.grad.div_(dist.world)


def _wrap_ddp(model: nn.Module, params: list[nn.Parameter], device: torch.device, dist: Dist) -> nn.Module:
    if not (dist.group and params):
        return model
    from torch.nn.parallel import DistributedDataParallel

    return DistributedDataParallel(model, device_ids=[device.index] if device.type == "cuda" else None)


def call_hook(aug: Any, hook: str, *args: Any, default: Any = None) -> Any:
    """Call a recipe's hook if it defines one: every hook of a TrainingAugmentation is optional
    (a class with only ``augment`` is a complete recipe)."""
    fn = getattr(aug, hook, None)
    return fn(*args) if callable(fn) else default


def train(model: nn.Module, data: DataBundle, settings: TrainSettings, augmentations: list[Any], *,
          seed: int, device: torch.device, registry: Any, cache_dir: Path | None = None,
          train_index: torch.Tensor | None = None, desc: str = "train", precision: str = "fp32",
          data_augment: Any = None, dist: Dist | None = None) -> nn.Module:
    """Train ``model`` in place on ``data`` (optionally the subset ``train_index``); return it.

    ``data_augment`` (an ``ImageAugmentation`` or None) rewrites every batch's images before the
    recipe sees them. Under torchrun (``dist``), every rank draws the same global batch, takes its share and trains
    a DistributedDataParallel wrapper; recipes that compute their own loss get their gradients
    averaged by hand. Recipes' own random draws use a per-rank generator.
    """
    if dist is None or not dist.group:
        dist = Dist()  # separate shard jobs (no process group) each train the whole model alone
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)  # batch order and data augmentation: the same on every rank
    x = data.x_train if train_index is None else data.x_train[train_index.to(data.x_train.device)]
    y = data.y_train if train_index is None else data.y_train[train_index.to(data.y_train.device)]
    hook_g = torch.Generator().manual_seed(seed * 1009 + dist.rank + 1) if dist.sharded else g
    ctx = TrainContext(model=model, x_train=x, y_train=one_hot(y, data.num_classes).to(x.device),
                       num_classes=data.num_classes, device=device, settings=settings, seed=seed,
                       registry=registry, generator=hook_g,
                       criterion=make_criterion(settings.loss, settings.focal_gamma),
                       feature_layers=tuple(getattr(model, "feature_layers", ())), cache_dir=cache_dir,
                       data_augment=getattr(data_augment, "name", "none"))
    for aug in augmentations:
        call_hook(aug, "setup", ctx)
    params = [p for p in model.parameters() if p.requires_grad]
    n = ctx.x_train.shape[0]
    steps = max(1, -(-n // settings.batch_size))
    opt = _optimizer(params, settings) if params else None
    sched = _scheduler(opt, settings, steps) if opt else None
    net = _wrap_ddp(model, params, device, dist)
    autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16")
    bar = progress(total=settings.epochs * steps, desc=desc + (f" [rank {dist.rank}]" if dist.sharded else ""),
                   unit="batch")
    try:
        for epoch in range(settings.epochs):
            ctx.epoch = epoch
            perm = torch.randperm(n, generator=g).to(ctx.x_train.device)
            seen = correct = 0
            total_loss = 0.0
            for b in range(steps):
                idx = perm[b * settings.batch_size:(b + 1) * settings.batch_size]
                x_batch = as_float(ctx.x_train[idx])
                if data_augment is not None:
                    x_batch = data_augment.augment_images(x_batch, g)
                weight, batch = 1.0, Batch(x_batch, ctx.y_train[idx].float(), idx)
                if dist.sharded:
                    part, weight = split_batch(torch.arange(len(idx), device=idx.device), dist)
                    batch = Batch(x_batch[part], batch.y[part], idx[part])
                for aug in augmentations:
                    batch = call_hook(aug, "augment", batch, ctx, default=batch)
                model.train()
                with autocast:
                    loss = None
                    for aug in augmentations:
                        out = call_hook(aug, "loss", model, batch, ctx)
                        loss = out if out is not None else loss
                    own_loss = loss is not None
                    if loss is None:
                        logits = net(batch.x)
                        loss = ctx.criterion(logits, batch.y)
                        correct += int((logits.argmax(1) == batch.y.argmax(1)).sum())
                        seen += len(batch.y)
                if opt is not None:
                    opt.zero_grad(set_to_none=True)
                    (loss * weight if weight != 1.0 else loss).backward()
                    if own_loss and dist.group:
                        _average_gradients(params, dist)
                    opt.step()
                    if sched is not None:
                        sched.step()
                total_loss += float(loss.detach())
                ctx.step += 1
                bar.update(1)
                bar.set_postfix(epoch=epoch + 1, loss=f"{total_loss / (b + 1):.3f}",
                                acc=f"{correct / seen:.3f}" if seen else "-")
    finally:
        bar.close()
        if opt is not None:
            opt.zero_grad(set_to_none=True)
        for aug in reversed(augmentations):
            call_hook(aug, "teardown", ctx)
    model.eval()
    return model


def frozen_copy(model: nn.Module) -> nn.Module:
    """An eval-mode, no-grad copy (e.g. the 'defended model' whose predictions label samples)."""
    m = copy.deepcopy(model).eval()
    for p in m.parameters():
        p.requires_grad_(False)
    return m
