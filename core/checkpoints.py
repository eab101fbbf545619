"""Trained weights from the files people hand around, and input normalisation in pixel space.

``read_weights`` takes a state-dict ``.pt``/``.pth`` (loaded with ``weights_only=True``: no code
in the file runs), a ``.safetensors`` file or a TorchScript archive, and unwraps the usual
containers (``{"state_dict": ...}``, ``{"model": ...}``). ``load_weights`` loads it into a
network strictly and names the first missing and unexpected keys when they do not fit.
``Normalized`` puts ``(x - mean) / std`` in front of a network, so attacks, eps and clipping stay
in [0, 1] pixels — evaluating a torchvision or RobustBench-style model on normalised inputs with
eps meant for pixels is the classic way to report a wrong robust accuracy.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from advx.errors import ConfigError

#: ``normalize = "<name>"`` presets: (mean, std) per channel.
NORMALIZE_PRESETS: dict[str, tuple[tuple[float, ...], tuple[float, ...]]] = {
    "imagenet": ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225)),
    "cifar10": ((0.4914, 0.4822, 0.4465), (0.2471, 0.2435, 0.2616)),
    "cifar100": ((0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762)),
    "mnist": ((0.1307,), (0.3081,)),
}
_CONTAINERS = ("state_dict", "model_state_dict", "model", "net", "weights")


def is_torchscript(path: Path) -> bool:
    """A TorchScript archive is a zip holding compiled ``code/``; ``torch.save`` zips have none."""
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return any("/code/" in n or n.startswith("code/") for n in z.namelist())


def file_digest(path: Path) -> str:
    """sha256 of a weights file: it keys the run, so a replaced file never reuses old results."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


def read_weights(path: Path, where: str = "model.checkpoint") -> dict[str, torch.Tensor]:
    """The state dict in ``path`` (any of the three formats)."""
    if not path.is_file():
        raise ConfigError(f"{where}: file {path} not found")
    if path.suffix == ".safetensors":
        try:
            from safetensors.torch import load_file
        except ImportError:
            raise ConfigError(f"{where}: {path.name} needs the safetensors package: pip install safetensors") from None
        try:
            return load_file(str(path))
        except Exception as exc:  # safetensors raises its own SafetensorError for a bad header
            raise ConfigError(f"{where}: {path} is not a readable safetensors file ({exc})") from None
    if is_torchscript(path):
        return dict(torch.jit.load(str(path), map_location="cpu").state_dict())
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # UnpicklingError for pickled modules, RuntimeError/EOFError for bad files
        first = str(exc).strip().splitlines()[0][:160] if str(exc).strip() else type(exc).__name__
        raise ConfigError(f"{where}: {path} cannot be read as weights ({first}); save model.state_dict() with "
                          f"torch.save, a .safetensors file or a TorchScript archive") from None
    for key in _CONTAINERS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not (isinstance(obj, dict) and obj and all(isinstance(v, torch.Tensor) for v in obj.values())):
        raise ConfigError(f"{where}: {path} holds no state dict (a dict of tensors, or one under "
                          f"{'/'.join(_CONTAINERS)})")
    return obj


def strip(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Keys without ``prefix`` (``"module."`` from DistributedDataParallel checkpoints)."""
    if not prefix:
        return state
    return {k[len(prefix):] if k.startswith(prefix) else k: v for k, v in state.items()}


def load_weights(net: nn.Module, path: Path, strip_prefix: str = "", where: str = "model.checkpoint") -> None:
    """Load ``path`` into ``net``: every key must fit, or one line names what does not."""
    state = strip(read_weights(path, where), strip_prefix)
    own = net.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:3]}" + (f" (+{len(missing) - 3} more)" if len(missing) > 3 else ""))
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:3]}"
                         + (f" (+{len(unexpected) - 3} more)" if len(unexpected) > 3 else ""))
        prefixes = {k.split(".", 1)[0] + "." for k in unexpected if "." in k}
        hint = (f"; the file's keys start with {next(iter(prefixes))!r}: pass --strip-prefix {next(iter(prefixes))} "
                f"(or set strip_prefix = \"{next(iter(prefixes))}\" in [model])" if len(prefixes) == 1 and unexpected and len(unexpected) == len(state)
                else "")
        raise ConfigError(f"{where}: {path} does not fit the network: {'; '.join(parts)}{hint}")
    wrong = [(k, tuple(v.shape), tuple(own[k].shape)) for k, v in state.items() if v.shape != own[k].shape]
    if wrong:
        k, got, want = wrong[0]
        raise ConfigError(f"{where}: {path} does not fit the network: {k} has shape {got} in the file, {want} in "
                          f"the network ({len(wrong)} tensors differ)")
    net.load_state_dict(state)


def classifier_rows(net: nn.Module, path: Path, strip_prefix: str = "") -> int | None:
    """The class count a state dict scores when it differs from ``net`` only there: every tensor
    whose shape differs has the same trailing shape and one row count K in the file (a classifier's
    weight and bias). None when the file fits or differs elsewhere."""
    state = strip(read_weights(path), strip_prefix)
    own = net.state_dict()
    rows = {tuple(v.shape)[0] for k, v in state.items() if k in own and v.shape != own[k].shape
            and v.ndim == own[k].ndim >= 1 and v.shape[1:] == own[k].shape[1:]}
    differ = [k for k, v in state.items() if k in own and v.shape != own[k].shape]
    return rows.pop() if len(rows) == 1 and differ and len(differ) <= 2 else None


class Normalized(nn.Module):
    """``model((x - mean) / std)``: the network sees normalised inputs, everything outside it —
    attacks, eps, clipping to [0, 1] — works in pixel space."""

    def __init__(self, model: nn.Module, mean: Any, std: Any) -> None:
        super().__init__()
        self.model = model
        self.register_buffer("mean", torch.as_tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
        self.register_buffer("std", torch.as_tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        self.feature_layers = tuple(f"model.{n}" for n in getattr(model, "feature_layers", ()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model((x - self.mean) / self.std)


def normalization(value: Any, channels: int | None, where: str = "model.normalize") -> tuple[list[float], list[float]]:
    """``(mean, std)`` from a preset name or ``{mean = [...], std = [...]}``, checked against the
    images' channel count (one value each is spread over every channel)."""
    if isinstance(value, str):
        if value not in NORMALIZE_PRESETS:
            raise ConfigError(f"{where}: unknown preset {value!r}; use one of {', '.join(NORMALIZE_PRESETS)} "
                              f"or {{ mean = [...], std = [...] }}")
        mean, std = NORMALIZE_PRESETS[value]
    elif isinstance(value, dict) and set(value) == {"mean", "std"}:
        mean, std = value["mean"], value["std"]
    else:
        raise ConfigError(f"{where}: expected a preset name or {{ mean = [...], std = [...] }}, got {value!r}")
    out = []
    for key, vals in (("mean", mean), ("std", std)):
        vals = [vals] if isinstance(vals, (int, float)) else vals
        if not (isinstance(vals, (list, tuple)) and vals and all(isinstance(v, (int, float)) and not isinstance(v, bool)
                                                                 for v in vals)):
            raise ConfigError(f"{where}.{key}: expected a list of numbers, got {vals!r}")
        if len(vals) == 1 and channels is not None:
            vals = list(vals) * channels
        if channels is not None and len(vals) != channels:
            raise ConfigError(f"{where}.{key}: {len(vals)} values for {channels}-channel images")
        if key == "std" and any(v <= 0 for v in vals):
            raise ConfigError(f"{where}.std: every value must be positive, got {list(vals)}")
        out.append([float(v) for v in vals])
    return out[0], out[1]
