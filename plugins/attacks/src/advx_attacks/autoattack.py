"""AutoAttack — Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020 (https://arxiv.org/abs/2003.01690), Section 5: the
standard ensemble APGD-CE, APGD-T, FAB-T, Square, each run on the points still robust."""

from __future__ import annotations

from typing import ClassVar, Literal

import attrs
import torch

from advx.api import AttackBase, progress_part, sample_rows, tally
from advx.streams import subset

from .apgd import APGD
from .apgd_targeted import APGDTargeted
from .fab import FAB
from .ops import success
from .square import Square

MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square", "apgd-dlr", "fab")
VERSIONS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"), "rand": ("apgd-ce", "apgd-dlr"),
            # the reference's order and restarts (pyautoattack AutoAttack._set_version("plus"))
            "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")}
#: restarts per member in the plus version (the others run one)
PLUS_RESTARTS = {"apgd-ce": 5, "apgd-dlr": 5, "fab": 5}
#: the reference's l1 settings of the standard version (AutoAttack._set_version, norm "L1"):
#: APGD-CE with 5 restarts and APGD-T on 5 target classes, both with the 3·eps, 2·eps, eps schedule
L1_STANDARD = {"apgd-ce restarts": 5, "apgd-t targets": 5}
#: per-sample codes in the ``broken_by`` record besides a member's index
SURVIVED, MISCLASSIFIED = -1, -2


def _members(_: object, attribute: attrs.Attribute, value: tuple[str, ...]) -> None:
    bad = [v for v in value if v not in MEMBERS]
    if bad:
        raise ValueError(f"{attribute.name}: unknown member(s) {bad}; choose from {', '.join(MEMBERS)}")


@attrs.frozen
class AutoAttack(AttackBase):
    """AutoAttack — Croce & Hein, ICML 2020 (https://arxiv.org/abs/2003.01690). Distance: linf, l2 or l1.

    ``version = "standard"``: APGD-CE (no restarts), APGD-T (``targets`` target classes, DLR),
    FAB-T (``targets`` target classes) and Square (``queries``), in that order; each member attacks
    only the samples no earlier member broke. ``version = "rand"`` (randomized defences): APGD-CE
    and APGD-DLR with the gradient averaged over ``eot`` = 20 draws (each query of the pipeline takes
    new draws), each returning its latest point that fooled a draw, as the reference's APGD does; a
    sample no member's point fooled on the acceptance draw keeps the last member's final point
    instead of the clean image (one draw's verdict on a randomized pipeline is a coin flip; the
    evaluation over fresh draws decides). ``version = "plus"``: APGD-CE
    and APGD-DLR with 5 restarts each, untargeted FAB with 5 restarts, Square, APGD-T, FAB-T (the
    reference's order and restarts). ``norm = "l1"`` (Croce & Hein, "Mind the box", ICML 2021):
    the same four members in l1 — l1-APGD-CE with 5 restarts, l1-APGD-T on at most 5 targets,
    FAB-T and Square in l1 — as the reference sets them. ``attacks = [...]`` picks the members and their order (names:
    apgd-ce, apgd-t, fab-t, square, apgd-dlr, fab). ``steps`` (100) is
    every gradient member's iteration count; the defaults are AutoAttack's, and a run that
    shrinks ``steps`` or ``queries`` is no longer the standard evaluation — say so beside it.
    The per-sample record (``attack_with_log``) says which member broke each sample
    (``broken_by``: member index, −1 survived, −2 misclassified without perturbation) and the
    passes each member spent on it, its verdict pass included (``member_forwards``,
    ``member_backwards``: N x members; counted on the evaluator's counting model, else 0).
    Untargeted only. Example: ``advx.create("attack", "autoattack", eps="8/255")(model, x, y)``.
    """

    name: ClassVar[str] = "autoattack"
    per_sample_streams: ClassVar[bool] = True
    supports_target: ClassVar[bool] = False
    #: the record of a sample the evaluator does not attack (wrong on clean input)
    skipped_log: ClassVar[dict[str, int]] = {"broken_by": MISCLASSIFIED}
    eps: float = attrs.field(default=8 / 255, validator=attrs.validators.ge(0))
    norm: Literal["linf", "l2", "l1"] = attrs.field(default="linf",
                                                    validator=attrs.validators.in_(["linf", "l2", "l1"]))
    version: Literal["standard", "plus", "rand"] = attrs.field(default="standard",
                                                       validator=attrs.validators.in_(list(VERSIONS)))
    attacks: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_members)
    steps: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    targets: int = attrs.field(default=9, validator=attrs.validators.ge(1))
    queries: int = attrs.field(default=5000, validator=attrs.validators.ge(1))
    eot: int = attrs.field(default=20, validator=attrs.validators.ge(1))

    @property
    def members(self) -> tuple[str, ...]:
        return self.attacks or VERSIONS[self.version]

    def member(self, name: str) -> AttackBase:
        """The configured attack object behind a member name."""
        eot = self.eot if self.version == "rand" else 1
        restarts = PLUS_RESTARTS.get(name, 1) if self.version == "plus" else 1
        targets = self.targets
        if self.norm == "l1" and self.version == "standard":
            restarts = L1_STANDARD["apgd-ce restarts"] if name == "apgd-ce" else restarts
            targets = min(targets, L1_STANDARD["apgd-t targets"]) if name == "apgd-t" else targets
        common = dict(eps=self.eps, norm=self.norm, bounds=self.bounds)
        if name == "apgd-ce":
            return APGD(steps=self.steps, loss="ce", eot=eot, restarts=restarts, **common)
        if name == "apgd-dlr":
            return APGD(steps=self.steps, loss="dlr", eot=eot, restarts=restarts, **common)
        if name == "apgd-t":
            return APGDTargeted(steps=self.steps, targets=targets, **common)
        if name == "fab-t":
            return FAB(steps=self.steps, targets=self.targets, **common)
        if name == "fab":
            return FAB(steps=self.steps, targeted=False, restarts=restarts, **common)
        return Square(queries=self.queries, **common)

    def perturb_logged(self, model, x, y, *, target, generator, eps):
        with torch.no_grad():
            robust = ~success(model(x).float(), y, None)
        broken_by = torch.where(robust, SURVIVED, MISCLASSIFIED).to(torch.int16)
        # the ledger: passes (one image through the model) each member spent on each sample,
        # its verdict pass included
        spent = {kind: torch.zeros(len(x), len(self.members), dtype=torch.int32) for kind in ("forward", "backward")}
        x_adv = x.clone()
        for k, name in enumerate(self.members):
            todo = robust.nonzero().flatten()
            if len(todo) == 0:
                break
            attack = self.member(name)
            with sample_rows(todo), tally(len(todo)) as member:
                with progress_part(name, k, len(self.members)):
                    cand = attack.perturb(model, x[todo], y[todo], target=None, generator=subset(generator, todo),
                                          eps=eps[todo])
                cand = cand.clamp(*self.bounds)
                with torch.no_grad():
                    ok = success(model(cand).float(), y[todo], None)
            for kind in spent:
                spent[kind][todo.cpu(), k] = getattr(member, kind).to(torch.int32)
            keep = torch.ones_like(ok) if self.version == "rand" else ok  # rand: the final point, fooled or not
            x_adv[todo[keep]] = cand[keep]
            robust[todo[ok]] = False
            broken_by[todo[ok]] = k
        return x_adv, {"broken_by": broken_by, "member_forwards": spent["forward"],
                       "member_backwards": spent["backward"]}

    def perturb(self, model, x, y, *, target, generator, eps):
        return self.perturb_logged(model, x, y, target=target, generator=generator, eps=eps)[0]
