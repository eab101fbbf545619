"""The resolved plan the cell runner executes: each attack and defence built once, with its spec.

An experiment's config names attacks and defences by label; the runner needs, for a cell, the
attack object with its spec (targeting), and for a (trained model, defence) pair the chain of
defence objects with the draws it averages (``repeats``) and the draws an adaptive attack takes
(``eot``: the variant's own, else ``evaluate.eot``). Resolving that once here keeps one copy of
each rule instead of lookups by label scattered through the runner.
"""

from __future__ import annotations

from typing import Any

import attrs

from advx.config import AttackSpec, DefenseVariant, ExperimentConfig

from .cells import NONE, find_defense


@attrs.frozen
class PlannedAttack:
    """One ``[[attack]]``: its spec (label, target, sweep) and the attack object."""

    spec: AttackSpec
    attack: Any

    @property
    def label(self) -> str:
        return self.spec.label


@attrs.frozen
class PlannedDefense:
    """The pipeline a trained model gets for one defence label: the chain (empty for ``none``),
    evaluation draws (``repeats``) and attack draws (``eot``)."""

    label: str
    chain: tuple[Any, ...] = ()
    repeats: int = 1
    eot: int = 1
    variant: DefenseVariant | None = None

    @property
    def draws(self) -> int:
        """Copies of each input one attacked forward pass holds (memory for ``batch_size = "auto"``)."""
        return 1 if self.variant is None else self.repeats * self.eot


@attrs.frozen
class Plan:
    attacks: dict[str, PlannedAttack]
    defenses: dict[tuple[str, str], PlannedDefense]  # (trained model, defence label)

    def attack(self, label: str) -> PlannedAttack:
        return self.attacks[label]

    def defense(self, train: str, label: str) -> PlannedDefense:
        return self.defenses.get((train, label)) or PlannedDefense(NONE, eot=1)


def make_plan(cfg: ExperimentConfig, components: dict[str, Any]) -> Plan:
    """Bind every attack spec to its object and every (model, defence) to its chain and draws."""
    attacks = {a.label: PlannedAttack(a, components["attacks"][a.label]) for a in cfg.attacks}
    defenses: dict[tuple[str, str], PlannedDefense] = {}
    labels = dict.fromkeys(d.label for d in cfg.defenses)
    for t in cfg.trains:
        defenses[(t.label, NONE)] = PlannedDefense(NONE, eot=cfg.evaluate.eot)
        for label in labels:
            d = find_defense(cfg, label, t.label)  # one label may name per-model variants
            if d is None:
                continue
            chain = tuple(components["defenses"][(d.label, d.trains)])
            defenses[(t.label, d.label)] = PlannedDefense(d.label, chain, d.repeats, d.eot or cfg.evaluate.eot, d)
    return Plan(attacks, defenses)
