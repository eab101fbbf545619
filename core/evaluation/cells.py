"""Cells of the grid (trained model x defence x attack x threat model): their names and keys."""

from __future__ import annotations

import hashlib
import json
import re

import attrs

from advx.config import DefenseVariant, ExperimentConfig

CLEAN = "clean"
NONE = "none"


@attrs.frozen
class Cell:
    train: str
    defense: str
    attack: str
    mode: str  # "clean", or the name of the threat model (advx.evaluation.threat_models) it is stored under

    def spec(self) -> dict[str, str]:
        return attrs.asdict(self)

    def key(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9_.=+-]+", "_", f"{self.train}__{self.defense}__{self.attack}__{self.mode}")
        digest = hashlib.sha1(json.dumps(self.spec(), sort_keys=True).encode()).hexdigest()[:8]
        return f"{slug[:80]}-{digest}"


def find_defense(cfg: ExperimentConfig, label: str, train: str | None = None) -> DefenseVariant | None:
    """The [[defense]] called ``label`` that applies to ``train`` (one label may name per-model
    variants with disjoint ``trains``, e.g. MI-OL with λ 0.5 on mixup models and 0.6 on IAT)."""
    return next((d for d in cfg.defenses if d.label == label
                 and (train is None or d.trains is None or train in d.trains)), None)
