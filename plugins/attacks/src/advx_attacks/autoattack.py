"""AutoAttack — Croce & Hein, "Reliable evaluation of adversarial robustness with an ensemble of
diverse parameter-free attacks", ICML 2020 (https://arxiv.org/abs/2003.01690), Section 5: the
standard ensemble APGD-CE, APGD-T, FAB-T, Square, each run on the points still robust."""

from __future__ import annotations

import warnings
from typing import ClassVar, Literal

import attrs
import torch

from advx.api import AttackBase, progress_part, sample_rows, streams, tally

from .apgd import APGD
from .apgd_targeted import APGDTargeted
from .fab import FAB
from .ops import success
from .square import Square

MEMBERS = ("apgd-ce", "apgd-t", "fab-t", "square", "apgd-dlr", "fab")
VERSIONS = {"standard": ("apgd-ce", "apgd-t", "fab-t", "square"), "rand": ("apgd-ce", "apgd-dlr"),
            # APGD-CE, then APGD-T on the targets MALT ranks nearest; checked on a subsample
            "fast": ("apgd-ce", "apgd-t"),
            # the reference's order and restarts (pyautoattack AutoAttack._set_version("plus"))
            "plus": ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")}
#: restarts per member in the plus version (the others run one)
PLUS_RESTARTS = {"apgd-ce": 5, "apgd-dlr": 5, "fab": 5}
#: the reference's l1 settings of the standard version (AutoAttack._set_version, norm "L1"):
#: APGD-CE with 5 restarts and APGD-T on 5 target classes, both with the 3·eps, 2·eps, eps schedule
L1_STANDARD = {"apgd-ce restarts": 5, "apgd-t targets": 5}
#: per-sample codes in the ``broken_by`` record besides a member's index
SURVIVED, MISCLASSIFIED = -1, -2
#: per-sample codes in the fast version's ``check`` record
NOT_CHECKED, AGREES, MISSED = -1, 0, 1


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
    evaluation over fresh draws decides). ``version = "fast"``: APGD-CE, then APGD-T on the
    ``fast_targets`` (3) classes MALT ranks nearest (Melamed et al., NeurIPS 2024,
    https://arxiv.org/abs/2407.02240) instead of AutoAttack's 9 by logit, no FAB-T and no Square;
    a seeded subsample (``check_fraction`` 10 % of the attacked samples, at least ``check_min`` =
    20) is also attacked with the standard ensemble (``steps``, ``targets``, ``queries``), and the run stores how
    many samples the fast version left robust that the standard one broke (a warning when any),
    from which the report bounds the robust accuracy it overstates. A fast number is an estimate
    with that bound, not the standard evaluation. ``version = "plus"``: APGD-CE
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
    skipped_log: ClassVar[dict[str, int]] = {"broken_by": MISCLASSIFIED, "check": NOT_CHECKED}
    eps: float = attrs.field(default=8 / 255, validator=attrs.validators.ge(0))
    norm: Literal["linf", "l2", "l1"] = attrs.field(default="linf",
                                                    validator=attrs.validators.in_(["linf", "l2", "l1"]))
    version: Literal["standard", "plus", "rand", "fast"] = attrs.field(default="standard",
                                                       validator=attrs.validators.in_(list(VERSIONS)))
    attacks: tuple[str, ...] = attrs.field(default=(), converter=tuple, validator=_members)
    steps: int = attrs.field(default=100, validator=attrs.validators.ge(1))
    targets: int = attrs.field(default=9, validator=attrs.validators.ge(1))
    queries: int = attrs.field(default=5000, validator=attrs.validators.ge(1))
    eot: int = attrs.field(default=20, validator=attrs.validators.ge(1))
    fast_targets: int = attrs.field(default=3, validator=attrs.validators.ge(1))
    check_fraction: float = attrs.field(default=0.1, validator=[attrs.validators.ge(0), attrs.validators.le(1)])
    check_min: int = attrs.field(default=20, validator=attrs.validators.ge(0))

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
        if name == "apgd-t" and self.version == "fast":
            return APGDTargeted(steps=self.steps, targets=self.fast_targets, ranking="malt", **common)
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
                    cand = attack.perturb(model, x[todo], y[todo], target=None, generator=streams.subset(generator, todo),
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
        log = {"broken_by": broken_by, "member_forwards": spent["forward"], "member_backwards": spent["backward"]}
        if self.version == "fast":
            log.update(self.check(model, x, y, robust, generator, eps))
        return x_adv, log

    def check_rows(self, generator, n: int) -> torch.Tensor:
        """The fast version's check subsample: each sample whose own stream draws below
        ``check_fraction``, topped up with the lowest draws to ``check_min`` (all of them when the
        call has fewer). Seeded per sample: the same samples whatever else is in the batch, except
        that the top-up looks at the batch."""
        u = streams.uniform(generator, (n,), torch.empty(n))
        picked = u < self.check_fraction
        floor = min(self.check_min, n)
        if int(picked.sum()) < floor:
            picked[u.argsort()[:floor]] = True
        return picked

    def check(self, model, x, y, robust, generator, eps) -> dict[str, torch.Tensor]:
        """Attack the subsample's samples the fast members left robust with the standard ensemble
        at this attack's ``steps``, ``targets`` (not ``fast_targets``) and ``queries``: AutoAttack's
        own settings unless shrunk.
        ``check``: −1 not in the subsample, 0 in it and the standard ensemble broke nothing the
        fast one missed, 1 robust under the fast members but broken by the standard ensemble; with
        the passes the check spent per sample. A miss warns at once; ``advx report`` bounds what
        the fast version overstates from these records (``advx.evaluation.verdict.binomial_upper``)."""
        picked = self.check_rows(generator, len(x)).to(x.device)
        check = torch.where(picked, AGREES, NOT_CHECKED).to(torch.int8)
        spent = {kind: torch.zeros(len(x), dtype=torch.int32) for kind in ("forward", "backward")}
        audit = (picked & robust).nonzero().flatten()
        if len(audit):
            standard = AutoAttack(eps=self.eps, norm=self.norm, bounds=self.bounds, steps=self.steps,
                                  targets=self.targets, queries=self.queries)
            with sample_rows(audit), tally(len(audit)) as cost, progress_part("check", 0, 1):
                _, log = standard.perturb_logged(model, x[audit], y[audit], target=None,
                                                 generator=streams.subset(generator, audit), eps=eps[audit])
            missed = audit[(log["broken_by"] >= 0).to(audit.device)]
            check[missed] = MISSED
            for kind in spent:
                spent[kind][audit.cpu()] = getattr(cost, kind).to(torch.int32)
            if len(missed):
                warnings.warn(f"fast AutoAttack left {len(missed)} of {int(picked.sum())} checked samples robust "
                              "that the standard ensemble broke: its robust accuracy is overstated; "
                              "run version = \"standard\"", RuntimeWarning, stacklevel=2)
        return {"check": check, "check_forwards": spent["forward"], "check_backwards": spent["backward"]}

    def perturb(self, model, x, y, *, target, generator, eps):
        return self.perturb_logged(model, x, y, target=target, generator=generator, eps=eps)[0]
