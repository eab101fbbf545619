"""The trained-weights cache: a model is stored under the hash of everything that determines it
(data, model, recipe, seed, plugin code) and loaded back with ``weights_only=True``; writes go
through a temporary file, so a kill never leaves half a checkpoint."""

from __future__ import annotations

import json
import os
import time
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..errors import AdvxWarning


def load_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """Load a state dict safely (``weights_only=True``: no code in a checkpoint ever runs)."""
    obj = torch.load(path, map_location="cpu", weights_only=True)
    return obj["state_dict"] if isinstance(obj, dict) and "state_dict" in obj else obj


def save_checkpoint(model: nn.Module, path: Path, meta: dict[str, Any]) -> None:
    """Write through a temporary file so a kill never leaves a partial checkpoint. A failed write
    (disk full, a file-size limit) warns in one line: the trained model is still in memory and the
    run goes on; only the cache entry is missing."""
    tmp = path.with_suffix(f".{os.getpid()}.tmp")  # concurrent shard jobs never share a temp file
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        torch.save({"state_dict": model.state_dict(), "meta": json.dumps(meta, default=str)}, tmp)
        tmp.replace(path)
    except (OSError, RuntimeError) as exc:  # torch's zip writer reports a short write as RuntimeError
        tmp.unlink(missing_ok=True)
        warnings.warn(f"could not write the checkpoint {path} ({str(exc).splitlines()[0][:120]}); the model is "
                      f"used from memory but will be retrained next time", AdvxWarning, stacklevel=2)


def readable_checkpoint(path: Path) -> dict[str, torch.Tensor] | None:
    """The cached state dict, or None (with a one-line warning) when the file cannot be read —
    truncated by a full disk or a kill mid-write — so the model is retrained instead of crashing."""
    try:
        return load_checkpoint(path)
    except Exception as exc:  # torch raises RuntimeError, EOFError, UnpicklingError, ... for a bad file
        warnings.warn(f"cached checkpoint {path} cannot be read ({type(exc).__name__}: {str(exc)[:80]}); "
                      f"retraining it", AdvxWarning, stacklevel=2)
        return None


STALE_SECONDS = 600


def remove_stale_temporaries(folder: Path) -> None:
    """Delete ``<hash>.<pid>.tmp`` checkpoints left by a killed process: its pid no longer runs here
    and the file is older than ``STALE_SECONDS`` (a shard job on another machine sharing the cache
    may use the same pid number, but finishes its write in seconds)."""
    for tmp in folder.glob("*.*.tmp"):
        try:
            pid = int(tmp.suffixes[-2].lstrip("."))
            old = time.time() - tmp.stat().st_mtime > STALE_SECONDS
        except (ValueError, IndexError, OSError):
            continue
        if old and pid != os.getpid() and not _alive(pid):
            tmp.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
