"""The grid: cells (trained model x defence x attack x mode) and their per-chunk evaluation."""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any, Callable

import attrs
import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advx import streams
from advx.config import DefenseVariant, ExperimentConfig

CLEAN = "clean"
NONE = "none"


@attrs.frozen
class Cell:
    train: str
    defense: str
    attack: str
    mode: str  # "clean" | "oblivious" | "adaptive" | "transfer" | "black-box"

    def spec(self) -> dict[str, str]:
        return attrs.asdict(self)

    def key(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", f"{self.train}__{self.defense}__{self.attack}__{self.mode}")
        digest = hashlib.sha1(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{slug[:80]}-{digest}"


def expand_grid(cfg: ExperimentConfig, gradient_free: frozenset[str] | set[str] = frozenset()) -> list[Cell]:
    """Clean cells for every (model, defence), then attack cells for every mode.

    The undefended pipeline gets one white-box cell (oblivious and adaptive coincide there), and
    a black-box cell only when no oblivious one attacks the same model. ``black-box`` cells exist
    only for the attacks labelled in ``gradient_free``; those get no ``adaptive`` cells when
    black-box runs (querying the pipeline is what black-box does). An attack with
    ``defenses = [...]`` is evaluated on those pipelines only; a defence with ``trains = [...]`` is
    built on those trained models only.
    """
    modes = cfg.evaluate.modes
    labels = list(dict.fromkeys(([NONE] if cfg.evaluate.include_undefended else []) + [d.label for d in cfg.defenses]))
    cells = []
    for t in cfg.trains:
        defenses = [d for d in labels if d == NONE or find_defense(cfg, d, t.label) is not None]
        for d in defenses:
            cells.append(Cell(t.label, d, CLEAN, CLEAN))
        for a in cfg.attacks:
            for d in defenses:
                if a.defenses is not None and d not in a.defenses:
                    continue
                for mode in modes:
                    if a.modes is not None and mode not in a.modes:
                        continue
                    if mode == "black-box" and a.label not in gradient_free:
                        continue
                    if mode == "adaptive" and a.label in gradient_free and "black-box" in modes:
                        continue
                    if d == NONE and mode in ("adaptive", "black-box") and "oblivious" in modes:
                        continue
                    cells.append(Cell(t.label, d, a.label, "oblivious" if d == NONE and mode == "adaptive" else mode))
    return list(dict.fromkeys(cells))


def chunk_seed(seed: int, *parts: Any) -> int:
    h = hashlib.sha256(json.dumps([seed, *parts], default=str).encode()).digest()
    return int.from_bytes(h[:6], "little")


def pick_targets(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                 g: Any) -> torch.Tensor | None:
    """Targets for targeted attacks: a random other class, or the least-likely class."""
    if kind == "none":
        return None
    if kind == "least-likely":
        with torch.no_grad():
            return model(x).argmin(1)
    shift = streams.integers(g, 1, num_classes, (len(y),), y.device)
    return (y + shift) % num_classes


def predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
            autocast: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and per-sample CE loss of ``model`` on ``x`` (batched, no grad unless the
    defence asks for it internally)."""
    preds, losses = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            with autocast:
                logits = model(x[i:i + batch_size]).float()
            preds.append(logits.argmax(1))
            losses.append(F.cross_entropy(logits, y[i:i + batch_size], reduction="none"))
    return torch.cat(preds), torch.cat(losses)


def per_sample_arrays(index: torch.Tensor, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                      pred: torch.Tensor, loss: torch.Tensor) -> dict[str, np.ndarray]:
    delta = (x_adv - x).flatten(1).float()
    return {
        "index": index.cpu().numpy(), "label": y.cpu().numpy(), "prediction": pred.cpu().numpy(),
        "correct": (pred == y).cpu().numpy(), "linf": delta.abs().amax(1).cpu().numpy().astype(np.float32),
        "l2": delta.norm(dim=1).cpu().numpy().astype(np.float32), "loss": loss.cpu().numpy().astype(np.float32),
    }


def run_attack(attack: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
               batch_size: int, g: torch.Generator, autocast: Any) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """The adversarial batch and the attack's per-sample records (``attack_with_log``, if it has one)."""
    out, logs = [], {}
    with_log = getattr(attack, "attack_with_log", None)
    for i in range(0, len(x), batch_size):
        t = None if target is None else target[i:i + batch_size]
        xs, ys = x[i:i + batch_size], y[i:i + batch_size]
        with autocast:
            if with_log is None:
                out.append(attack(model, xs, ys, target=t, generator=g))
                continue
            x_adv, log = with_log(model, xs, ys, target=t, generator=g)
        out.append(x_adv)
        for k, v in log.items():
            logs.setdefault(k, []).append(v.cpu().numpy())
    return torch.cat(out).float(), {k: np.concatenate(v) for k, v in logs.items()}


def find_defense(cfg: ExperimentConfig, label: str, train: str | None = None) -> DefenseVariant | None:
    """The [[defense]] called ``label`` that applies to ``train`` (one label may name per-model
    variants with disjoint ``trains``, e.g. MI-OL with λ 0.5 on mixup models and 0.6 on IAT)."""
    return next((d for d in cfg.defenses if d.label == label
                 and (train is None or d.trains is None or train in d.trains)), None)
