"""Build, train or load every trained model of an experiment (cached by the hash of its spec)."""

from __future__ import annotations

import time
import warnings
from pathlib import Path
from typing import Any

import attrs
import torch
from torch import nn

from advx.checkpoints import Normalized, classifier_rows, file_digest, load_weights, normalization
from advx.config import ExperimentConfig, TrainVariant
from advx.data.bundle import DataBundle
from advx.data.splits import training_subset
from advx.distributed import Dist
from advx.errors import AdvxWarning, ConfigError
from .cache import load_checkpoint, readable_checkpoint, remove_stale_temporaries, save_checkpoint
from .loop import adapt_model, create_image_augmentation, spec_hash, train


def resolve_training(cfg: ExperimentConfig, registry: Any) -> dict[str, Any]:
    """Every component that training needs, each created once from its TOML path: the model
    factory, each variant's recipe (label -> instances in order) and the image augmentations
    (name -> instance). ``Experiment.resolve`` calls this once; training and hashing use the result."""
    image_augment = {}
    first = {cfg.data.augment: "data.augment"}
    for i, t in enumerate(cfg.trains):  # trains[0] is [model.train], the others [[train]] in order
        if t.settings.data_augment is not None:
            where = f"train[{i - 1}].data_augment" if i else "model.train.data_augment"
            first.setdefault(t.settings.data_augment, where)
    for name, where in first.items():
        image_augment[name] = create_image_augmentation(registry, name, where)
    return {"model": registry.create("model", cfg.model.name, cfg.model.params, where="model"),
            "recipes": {t.label: [registry.create("training_augmentation", s.name, s.params, where=s.where)
                                  for s in t.settings.augment] for t in cfg.trains},
            "image_augment": image_augment}


def _as_run(obj: Any, spec: Any) -> Any:
    """A component as it will run: every init field with its value, defaults included, so a
    changed default in a plugin yields a new model hash instead of a stale cached checkpoint."""
    if not attrs.has(type(obj)):
        return spec.key()
    return {"name": spec.name, "params": {f.name: getattr(obj, f.name) for f in attrs.fields(type(obj)) if f.init}}


#: Settings added after models were cached, left out of the hash at their no-op default so those
#: checkpoints keep their keys; any other value is hashed like every other field.
_HASH_NEUTRAL = {"milestones": ()}


def weights_key(cfg: ExperimentConfig) -> dict[str, Any]:
    """The base network's weights files by content (a replaced file is a new model) and its input
    scaling; empty for a network the experiment trains itself, so those hashes stay as they were."""
    files = [cfg.model_files.checkpoint, *(v for v in cfg.model.params.values() if isinstance(v, str)),
             *(t.settings.checkpoint for t in cfg.trains)]
    digests = {f: file_digest(Path(f).expanduser()) for f in files if f and Path(f).expanduser().is_file()}
    key = {"files": digests} if digests else {}
    if cfg.model_files.strip_prefix:
        key["strip_prefix"] = cfg.model_files.strip_prefix
    if cfg.model_files.normalize is not None:
        key["normalize"] = cfg.model_files.normalize
    return key


def code_of(registry: Any, components: list[tuple[str, str]]) -> dict[str, str]:
    """{plugin package (or advx module): digest of its source} for the named components."""
    return dict(sorted(registry.code_digest(kind, name) for kind, name in components))


def _variant_spec(cfg: ExperimentConfig, variant: TrainVariant, init_hash: str | None, registry: Any,
                  components: dict[str, Any] | None = None) -> dict[str, Any]:
    s = variant.settings
    components = components or resolve_training(cfg, registry)
    model = _as_run(components["model"], cfg.model)
    recipe = [_as_run(obj, a) for obj, a in zip(components["recipes"][variant.label], s.augment)]
    # the plugin code a trained model depends on: its network, data and recipe, and the attack a
    # recipe crafts with, so a model trained by other code is retrained, not reused
    image_augment = variant.data_augment(cfg.data)
    used = [("model", cfg.model.name), ("dataset", cfg.data.dataset.name),
            *(("training_augmentation", a.name) for a in s.augment),
            *((("training_augmentation", image_augment),) if image_augment != "none" else ()),
            *(("attack", r["params"]["attack"]) for r in recipe
              if isinstance(r, dict) and isinstance(r["params"].get("attack"), str))]
    code = {"code": code_of(registry, used)}
    if variant.label == "base" and cfg.pretrained:  # nothing is trained: the weights are the model
        return {"model": model, **weights_key(cfg), **code}
    return {
        "data": cfg.data.dataset.key(), "train_fraction": cfg.data.train_fraction,
        "val_fraction": cfg.data.val_fraction, "data_augment": cfg.data.augment,
        "model": model, "seed": cfg.experiment.seed, "precision": cfg.experiment.precision,
        "train": {k: (v if k != "augment" else recipe)
                  for k, v in attrs.asdict(s, recurse=False).items() if k not in _HASH_NEUTRAL or v != _HASH_NEUTRAL[k]},
        "base": init_hash if s.init != "scratch" else None,  # the model training starts from
        **weights_key(cfg), **code,
    }


def build_model(cfg: ExperimentConfig, registry: Any, data: DataBundle, weights: bool = True,
                factory: Any = None) -> nn.Module:
    """The network of ``[model]``: built by its factory, with ``model.checkpoint`` loaded when
    ``weights`` (the base network; variants start from scratch or from another model) and
    wrapped in its input normalisation."""
    factory = factory or registry.create("model", cfg.model.name, cfg.model.params, where="model")
    net = factory.build(num_classes=data.num_classes, in_channels=data.in_channels)
    files = cfg.model_files
    if weights and files.checkpoint is not None:
        load_weights(net, Path(files.checkpoint).expanduser(), files.strip_prefix)
    if files.normalize is not None:
        net = Normalized(net, *normalization(files.normalize, data.in_channels))
    return net


def _probe(net: nn.Module, data: DataBundle, name: str) -> torch.Tensor:
    """The network's output on two blank images of the data's shape, in eval mode: fails before
    training, in one line naming both shapes, when it cannot take them (a 32x32 network's kernels
    on 8x8 digits), instead of a traceback from conv2d."""
    training = net.training
    net.eval()
    device = next((p.device for p in net.parameters()), torch.device("cpu"))  # a handed-in module may be on CUDA
    try:
        with torch.no_grad():
            return net(torch.zeros((2, *data.image_shape), device=device))
    except RuntimeError as exc:
        shape = "x".join(map(str, data.image_shape))
        raise ConfigError(f"model: {name} cannot take the data's {shape} (C x H x W) images: "
                          f"{str(exc).splitlines()[0][:160]}") from None
    finally:
        net.train(training)


def _check_classes(model: nn.Module, data: DataBundle, name: str) -> None:
    """A loaded network must take the data's images and score every class of the data set, or
    accuracy is meaningless."""
    out = _probe(model, data, name)
    if out.ndim != 2 or out.shape[1] != data.num_classes:
        raise ConfigError(f"model: the loaded network outputs shape {tuple(out.shape)} but the data set has "
                          f"{data.num_classes} classes")


def scored_classes(cfg: ExperimentConfig, registry: Any, data: DataBundle,
                   factory: Any = None) -> tuple[int | None, nn.Module | None]:
    """How many classes the pretrained network scores, read from the network itself: the output
    width of a TorchScript archive or a loaded network, or the classifier rows of a checkpoint that
    differs from the network built for the data's classes only there (None when it cannot be told);
    and the network when it loaded as built (reused by :func:`load_pretrained`)."""
    try:
        net = build_model(cfg, registry, data, factory=factory)
    except ConfigError:
        files = cfg.model_files
        if files.checkpoint is None:
            return None, None
        return classifier_rows(build_model(cfg, registry, data, weights=False, factory=factory),
                               Path(files.checkpoint).expanduser(), files.strip_prefix), None
    out = _probe(net, data, cfg.model.name)
    return (int(out.shape[1]) if out.ndim == 2 else None), net


def fit_classes(cfg: ExperimentConfig, registry: Any, data: DataBundle,
                factory: Any = None) -> tuple[DataBundle, nn.Module | None]:
    """A test file's labels may miss classes (7 of CIFAR-10's 10 in a small sample): when the class
    count was inferred from the labels, a pretrained network's own count wins and the bundle is
    widened to it, with a warning; a network scoring fewer classes than the labels need is refused
    naming ``--num-classes``. Returns the bundle and the network when it was already built and
    loaded (so :func:`load_pretrained` does not read the checkpoint twice)."""
    k, net = scored_classes(cfg, registry, data, factory)
    if k is None or k == data.num_classes:
        return data, net
    if k < data.num_classes:
        raise ConfigError(f"model: the network scores {k} classes but the data's labels go up to "
                          f"{data.num_classes - 1}; check the data, or give its class count (--num-classes, "
                          f"data.num_classes)")
    warnings.warn(f"data: the labels cover {data.num_classes} classes; the network scores {k}, so {k} are used "
                  f"(give --num-classes / data.num_classes to say so yourself)", AdvxWarning, stacklevel=2)
    return attrs.evolve(data, classes=tuple(str(i) for i in range(k))), net


def load_pretrained(cfg: ExperimentConfig, registry: Any, data: DataBundle, device: torch.device,
                    factory: Any = None, built: nn.Module | None = None) -> nn.Module | None:
    """The base network when it arrives trained, built and checked against the data set, else
    None (a network to train is built once to check its source). Called before a run file
    exists, so a bad checkpoint, factory or source leaves nothing behind. ``built``: the network
    :func:`fit_classes` already built and loaded."""
    if not cfg.pretrained:
        _probe(build_model(cfg, registry, data, weights=False, factory=factory), data, cfg.model.name)
        return None
    model = (built if built is not None else build_model(cfg, registry, data, factory=factory)).to(device).eval()
    _check_classes(model, data, cfg.model.name)
    return model


def obtain_models(cfg: ExperimentConfig, registry: Any, data: DataBundle, train_index: torch.Tensor | None,
                  device: torch.device, cache_dir: Path, record=None, dist: Dist | None = None,
                  pretrained: nn.Module | None = None, components: dict[str, Any] | None = None,
                  ) -> dict[str, nn.Module]:
    """Return {train label: trained model}; train only what the cache does not hold. ``components``
    is :func:`resolve_training`'s result (created here when not given).

    ``record(label, info)`` is called with the hash, checkpoint path and seconds of each model.
    Under torchrun every rank trains together (DDP) unless every rank finds the checkpoint;
    rank 0 writes it.
    """
    dist = dist or Dist()
    if dist.rank == 0 and (cache_dir / "models").is_dir():
        remove_stale_temporaries(cache_dir / "models")
    models: dict[str, nn.Module] = {}
    hashes: dict[str, str] = {}
    components = components or resolve_training(cfg, registry)
    for variant in cfg.trains:
        s = variant.settings
        h = spec_hash(_variant_spec(cfg, variant, hashes.get(s.init), registry, components))
        hashes[variant.label] = h
        path = cache_dir / "models" / f"{h}.pt"
        if variant.label == "base" and cfg.pretrained:  # evaluated as loaded: no training, no cache copy
            t0 = time.perf_counter()
            model = pretrained if pretrained is not None else load_pretrained(cfg, registry, data, device,
                                                                              components["model"])
            models[variant.label] = model
            if record is not None:
                record(variant.label, {"hash": h, "checkpoint": cfg.model_files.checkpoint or cfg.model.name,
                                       "cached": False, "loaded": True, "seconds": time.perf_counter() - t0})
            continue
        model = build_model(cfg, registry, data, weights=False, factory=components["model"]).to(device)
        augs = components["recipes"][variant.label]
        info = {"num_classes": data.num_classes, "in_channels": data.in_channels, "input_shape": data.image_shape,
                "feature_layers": tuple(getattr(model, "feature_layers", ()))}
        t0 = time.perf_counter()
        state = readable_checkpoint(path) if path.is_file() else None
        cached = dist.all_true(state is not None)
        if not cached:
            if s.init != "scratch":  # config checked it names an earlier model
                model.load_state_dict(models[s.init].state_dict())
            if s.checkpoint:
                ck = Path(s.checkpoint).expanduser()
                if not ck.is_file():
                    raise ConfigError(f"model.train.checkpoint: file {ck} not found")
                model.load_state_dict(load_checkpoint(ck))
        model = adapt_model(model, augs, info).to(device)
        if cached:
            model.load_state_dict(state)
        else:
            index = train_index if s.train_fraction is None else training_subset(
                data.y_train, train_index, s.train_fraction, cfg.experiment.seed)
            train(model, data, s, augs, seed=cfg.experiment.seed, device=device, registry=registry,
                  cache_dir=cache_dir, train_index=index, desc=f"train {variant.label}",
                  precision=cfg.experiment.precision,
                  data_augment=components["image_augment"][variant.data_augment(cfg.data)], dist=dist)
            if dist.rank == 0 or not dist.group:  # separate shard jobs each keep their own
                save_checkpoint(model, path, {"label": variant.label, "hash": h})
            dist.barrier()
        model.eval()
        if cfg.experiment.channels_last:
            model = model.to(memory_format=torch.channels_last)
        models[variant.label] = model
        if record is not None:
            record(variant.label, {"hash": h, "checkpoint": str(path), "cached": cached,
                                   "seconds": time.perf_counter() - t0})
    return models
