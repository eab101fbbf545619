"""The plan: a config resolved once into the cells the runner executes, each carrying its objects.

A planned cell holds the attack object with its spec (targeting), the :class:`Budget` its points
answer to, the defence pipeline's facts (chain, evaluation draws ``repeats``, attack draws ``eot``:
the variant's own, else ``evaluate.eot``; whether it is randomized or differentiable) and the
:class:`ThreatModel` that crafts its points. Every rule that decides one of these lives here or in
the object's class, once; the runner, the store, the audit and the reports read the facts.
"""

from __future__ import annotations

from typing import Any

import attrs

from advx.config import AttackSpec, DefenseVariant, ExperimentConfig

from .budget import Budget
from .cells import CLEAN, NONE, Cell, find_defense
from .threat_models import ThreatModel


@attrs.frozen
class PlannedAttack:
    """One ``[[attack]]``: its spec (label, target, sweep), the attack object and its budget."""

    spec: AttackSpec
    attack: Any
    budget: Budget

    @property
    def label(self) -> str:
        return self.spec.label

    @property
    def gradient_free(self) -> bool:
        return bool(getattr(self.attack, "gradient_free", False))


def randomized(chain: Any) -> bool:
    """The one rule for a randomized pipeline: some defence in its chain draws (``randomized``)."""
    return any(getattr(d, "randomized", False) for d in chain)


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

    @property
    def randomized(self) -> bool:
        """A defence that draws: averaged over ``repeats``, attacked with EOT."""
        return randomized(self.chain)

    @property
    def differentiable(self) -> bool:
        """False when some step passes gradients straight through under attack (BPDA)."""
        return all(getattr(d, "differentiable", True) for d in self.chain)

    @property
    def eot_draws(self) -> int:
        """Draws one attacked call averages: ``eot``, or more for a defence that averages its own
        draws in every call (the distribution classifier)."""
        return max([int(self.eot)] + [int(getattr(d, "averages_draws", 1)) for d in self.chain])

    def facts(self) -> dict[str, Any]:
        """What the store records of the pipeline beside every cell."""
        return {"repeats": int(self.repeats), "randomized": self.randomized, "differentiable": self.differentiable}


@attrs.frozen
class PlannedCell:
    """One cell of the grid with everything that runs it; ``threat`` and ``attack`` are None for
    clean cells."""

    cell: Cell
    defense: PlannedDefense
    attack: PlannedAttack | None = None
    threat: ThreatModel | None = None
    #: the threat models of the run whose cell this is (adaptive on the undefended pipeline is
    #: its oblivious cell): the per-threat-model tables find it under each
    stands_for: tuple[str, ...] = ()

    @property
    def clean(self) -> bool:
        return self.threat is None

    @property
    def eot(self) -> int:
        """Draws of the pipeline averaged in each gradient the attack follows: the pipeline's
        per-call draws times the attack's own EOT (AutoAttack's rand version: 20); 1 when the
        threat model does not differentiate the pipeline."""
        if self.threat is None or not self.threat.differentiates_pipeline:
            return 1
        return self.defense.eot_draws * int(getattr(self.attack.attack, "eot", 1) or 1)

    def facts(self) -> dict[str, Any]:
        """The attributes the store keeps for the cell: the audit, reports and checks read these."""
        out = {**self.defense.facts(), "eot": self.eot}
        if self.attack is not None and self.threat is not None:
            b = self.attack.budget
            out.update(budget=b.label, budget_norm=b.norm, budget_eps=-1.0 if b.eps is None else b.eps,
                       minimal=b.minimal, threat_model=self.threat.name, stands_for=list(self.stands_for),
                       stronger_than=list(self.threat.stronger_than))
            members = getattr(self.attack.attack, "members", None)
            if members:  # what the codes of a per-sample ``broken_by`` record mean
                out["members"] = list(members)
        return out


@attrs.frozen
class Plan:
    attacks: dict[str, PlannedAttack]
    defenses: dict[tuple[str, str], PlannedDefense]  # (trained model, defence label)
    cells: tuple[PlannedCell, ...] = ()

    def attack(self, label: str) -> PlannedAttack:
        return self.attacks[label]

    def defense(self, train: str, label: str) -> PlannedDefense:
        return self.defenses.get((train, label)) or PlannedDefense(NONE, eot=1)

    def eot_on(self, train: str, label: str) -> int:
        """The most draws any attack on the pipeline (train, label) averages per gradient."""
        return max([1] + [c.eot for c in self.cells if (c.cell.train, c.cell.defense) == (train, label)])


def make_plan(cfg: ExperimentConfig, components: dict[str, Any]) -> Plan:
    """Bind every attack spec to its object and budget, every (model, defence) to its chain and
    draws, and expand the grid into planned cells."""
    attacks = {a.label: PlannedAttack(a, components["attacks"][a.label],
                                      Budget.of(components["attacks"][a.label], a.budget)) for a in cfg.attacks}
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
    plan = Plan(attacks, defenses)
    return attrs.evolve(plan, cells=tuple(expand_grid(cfg, plan, components.get("threat_models", {}))))


def expand_grid(cfg: ExperimentConfig, plan: Plan, threat_models: dict[str, ThreatModel]) -> list[PlannedCell]:
    """Clean cells for every (model, defence), then one cell per attack, pipeline and threat model
    that makes one (:meth:`ThreatModel.cell_mode`). An attack with ``defenses = [...]`` is evaluated
    on those pipelines only, one with ``modes = [...]`` in those threat models only; a defence with
    ``trains = [...]`` is built on those trained models only."""
    modes = tuple(cfg.evaluate.modes)
    labels = list(dict.fromkeys(([NONE] if cfg.evaluate.include_undefended else []) + [d.label for d in cfg.defenses]))
    cells: dict[Cell, PlannedCell] = {}
    stands: dict[Cell, list[str]] = {}
    for t in cfg.trains:
        defenses = [d for d in labels if (t.label, d) in plan.defenses]
        for d in defenses:
            c = Cell(t.label, d, CLEAN, CLEAN)
            cells[c] = PlannedCell(c, plan.defense(t.label, d))
        for a in cfg.attacks:
            planned = plan.attacks[a.label]
            for d in defenses:
                if a.defenses is not None and d not in a.defenses:
                    continue
                for mode in modes:
                    if a.modes is not None and mode not in a.modes:
                        continue
                    stored = threat_models[mode].cell_mode(gradient_free=planned.gradient_free, defended=d != NONE,
                                                           modes=modes)
                    if stored is None:
                        continue
                    c = Cell(t.label, d, a.label, stored)
                    cells.setdefault(c, PlannedCell(c, plan.defense(t.label, d), planned, threat_models[stored]))
                    stands.setdefault(c, []).append(mode)
    return [attrs.evolve(p, stands_for=tuple(dict.fromkeys(stands[c]))) if c in stands else p
            for c, p in cells.items()]
