"""``advx audit RUN.h5``: the indicators a reviewer checks before believing a robustness number,
each computed from the stored per-sample arrays and given a verdict by a written rule.

The seven indicators and their rules (Carlini et al., "On Evaluating Adversarial Robustness", 2019;
Croce & Hein, ICML 2020, Section 5; Tramèr et al., "On Adaptive Attacks to Adversarial Example
Defenses", NeurIPS 2020):

- ``silent``: a finished cell whose samples do not match its pipeline's clean cell (missing or
  repeated test rows), a stored loss or distance that is NaN or infinite, a prediction outside the
  class range, or an attack that moved none of the samples it attacked. FAIL on any.
- ``incomplete``: a cell not marked done (interrupted or crashed). FAIL on any.
- ``unconstrained``: every stored perturbation is re-measured against its cell's budget (the
  stored ``linf``/``l2``/``l1`` against ``budget_norm``/``budget_eps``): FAIL on any point beyond
  it, or on a cell with no recorded budget (a run file too old to tell); minimal-norm attacks
  without a budget are kept out of robust accuracy ("unbounded", a worst case of their own).
- ``transfer beats adaptive``: a cell that leaves more samples robust than the same attack in a
  threat model it is stronger than (its stored ``stronger_than``: adaptive above oblivious or
  transfer, black-box above transfer). Every cell stores its own attack's result, so this is a
  failed attack, never hidden. FAIL on any; McNemar z given.
- ``randomized without EOT``: a pipeline flagged randomized, or whose predictions changed between
  two identical passes (the clean cell's stored ``unstable``), that no attack differentiated with
  EOT (every cell's stored ``eot``: draws averaged per gradient, 1 when the threat model does not
  differentiate the pipeline). FAIL on any.
- ``AutoAttack's checks``: the reference implementation's own warnings, from stored facts — a
  pipeline whose outputs are probabilities instead of logits (the clean cell's
  ``probability_outputs``), one whose outputs change between two identical calls (``unstable``),
  and an ensemble whose gradient-free member (Square) broke more than 0.2 % of the samples the
  gradient members before it left robust (the ``broken_by`` record). A note naming each, never a
  failure, as in the reference: each says the numbers may overstate robustness, and why.
- ``worst-case gap``: how far the per-sample worst case lies below the best single attack (the
  weakest cell). A note, never a failure: advx reports the worst case; a gap beyond sampling noise
  (more than 2 standard errors of a proportion) says no single attack would have sufficed.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

from .budget import ATOL, RTOL
from .cells import CLEAN
from .results import CellResult, RunResults, at_rows, cell_budget
from .sanity import mcnemar_z, square_breaks

OK, FAIL, NOTE, NA = "ok", "FAIL", "note", "n/a"
FLOATS = ("loss", "linf", "l2", "l1")


@attrs.frozen
class Indicator:
    name: str
    verdict: str          # ok | FAIL | note | n/a
    detail: str
    cells: tuple[str, ...] = ()


def _label(c: CellResult) -> str:
    return f"{c.cell.train}/{c.cell.defense}/{c.cell.attack} ({c.cell.mode})"


def _attacked(results: RunResults) -> list[CellResult]:
    return [c for c in results.cells if c.cell.mode != CLEAN]


def silent(results: RunResults) -> Indicator:
    classes = _num_classes(results)
    bad: list[str] = []
    reasons: list[str] = []
    for c in results.cells:
        if not c.finished:
            continue
        a = c.arrays
        why = []
        clean = results.get(c.cell.train, c.cell.defense, CLEAN)
        idx = a.get("index")
        rows_match = False  # the same test rows as the pipeline's clean cell
        if idx is None or len(idx) == 0:
            why.append("no samples stored")
        else:
            if len(np.unique(idx)) != len(idx):
                why.append("repeated test rows")
            rows_match = clean is not None and clean.finished and np.array_equal(
                np.sort(idx), np.sort(clean.arrays.get("index", np.array([]))))
            if clean is not None and clean is not c and clean.finished and not rows_match:
                why.append(f"{len(idx)} samples where its clean cell has {len(clean.arrays.get('index', []))}")
        for k in FLOATS:
            v = a.get(k)
            if v is not None and len(v) and not np.isfinite(v).all():
                why.append(f"{int((~np.isfinite(v)).sum())} non-finite {k}")
        pred = a.get("prediction")
        if pred is not None and classes and len(pred) and ((pred < 0) | (pred >= classes)).any():
            why.append("predictions outside the class range")
        zero_budget = cell_budget(c).endswith(" 0")  # an eps sweep's 0 point moves nothing by design
        if c.cell.mode != CLEAN and not zero_budget and rows_match and "linf" in a:
            ok = at_rows(clean, idx).astype(bool)  # the samples it attacked
            moved = a["linf"] > 0
            if ok.any() and not moved[ok].any():
                why.append(f"moved none of the {int(ok.sum())} samples it attacked")
        if why:
            bad.append(_label(c))
            reasons.append(f"{_label(c)}: {', '.join(why)}")
    if bad:
        return Indicator("silent", FAIL, "; ".join(reasons), tuple(bad))
    return Indicator("silent", OK, f"{sum(c.finished for c in results.cells)} finished cells: every sample stored "
                     "once, finite losses and distances, every attack moved what it attacked")


def _num_classes(results: RunResults) -> int | None:
    cfg = results.header.get("config", {}) if isinstance(results.header, dict) else {}
    n = (cfg.get("data") or {}).get("num_classes") if isinstance(cfg, dict) else None
    if isinstance(n, int):
        return n
    labels = results.test.get("label")
    return int(np.max(labels)) + 1 if labels is not None and len(labels) else None


def incomplete(results: RunResults) -> Indicator:
    bad = [c for c in results.cells if not c.finished]
    if not bad:
        return Indicator("incomplete", OK, f"all {len(results.cells)} cells finished")
    total = len(results.test.get("index", ())) or 0
    return Indicator("incomplete", FAIL, f"{len(bad)} of {len(results.cells)} cells unfinished: "
                     + "; ".join(c.unfinished_note(total) for c in bad[:5]), tuple(_label(c) for c in bad))


def unconstrained(results: RunResults) -> Indicator:
    cells = [c for c in _attacked(results) if c.finished]
    if not cells:
        return Indicator("unconstrained", NA, "no finished attack cells")
    unknown = [c for c in cells if not cell_budget(c) or "budget_eps" not in c.info]
    if unknown:
        return Indicator("unconstrained", FAIL, f"{len(unknown)} attack cells have no recorded budget (a run file "
                         "written before budgets were stored): their points cannot be checked against one",
                         tuple(_label(c) for c in unknown))
    bad, lines, checked = [], [], 0
    for c in cells:
        eps, norm = float(c.info["budget_eps"]), str(c.info.get("budget_norm", "linf"))
        if eps < 0:
            continue  # unbounded: a minimal-norm attack's own worst case
        sizes = c.arrays.get(norm)
        if sizes is None:
            bad.append(_label(c))
            lines.append(f"{_label(c)}: no stored {norm} perturbation sizes to check")
            continue
        checked += 1
        over = sizes > eps * (1 + RTOL) + ATOL
        if over.any():
            bad.append(_label(c))
            lines.append(f"{_label(c)}: {int(over.sum())} of {len(sizes)} stored points beyond its budget "
                         f"{cell_budget(c)} (largest {norm} {float(sizes.max()):.4g})")
    if bad:
        return Indicator("unconstrained", FAIL, "; ".join(lines), tuple(bad))
    minimal = [c for c in cells if float(c.info["budget_eps"]) < 0]
    kept = (f"; {len(minimal)} minimal-norm cells without a budget kept out of robust accuracy ('unbounded', a "
            "worst case of their own)") if minimal else ""
    beyond = [(c, int(np.sum(c.arrays["over_budget"]))) for c in cells if "over_budget" in c.arrays
              and np.any(c.arrays["over_budget"])]
    escaped = "".join(f"; {_label(c)}: {k} points the attack found lay beyond its budget {cell_budget(c)} and "
                      "count as no success there" for c, k in beyond)
    return Indicator("unconstrained", OK, f"{checked} bounded cells: every stored point within its budget" + kept
                     + escaped, tuple(_label(c) for c in minimal + [c for c, _ in beyond]))


def transfer_beats_adaptive(results: RunResults) -> Indicator:
    pairs = results.stronger_pairs()
    if not pairs:
        return Indicator("transfer beats adaptive", NA, "no adaptive/oblivious or black-box/transfer pair ran")
    bad, lines = [], []
    for c, o, a_ok, o_ok in results.trailing():
        only_a, only_o, z = mcnemar_z(a_ok, o_ok)
        bad.append(_label(c))
        lines.append(f"{_label(c)} {100 * a_ok.mean():.2f} % > {o.cell.mode} {100 * o_ok.mean():.2f} % "
                     f"(McNemar z = {z:.1f}, {only_a} vs {only_o} samples): a failed {c.cell.mode} attack")
    if bad:
        return Indicator("transfer beats adaptive", FAIL, "; ".join(lines), tuple(bad))
    return Indicator("transfer beats adaptive", OK, f"{pairs} pairs: no cell above the same attack in a threat "
                     "model it is stronger than")


def randomized_without_eot(results: RunResults) -> Indicator:
    unstable: dict[tuple[str, str], str] = {}
    for c in results.cells:
        key = (c.cell.train, c.cell.defense)
        if c.info.get("randomized"):
            unstable[key] = "flagged randomized"
        elif c.info.get("unstable"):
            unstable.setdefault(key, "predictions changed between two identical passes")
    if not unstable:
        return Indicator("randomized without EOT", NA, "no randomized or unstable pipeline")
    bad, lines = [], []
    for (t, d), why in unstable.items():
        attacked = [c for c in results.cells if (c.cell.train, c.cell.defense) == (t, d) and c.cell.mode != CLEAN]
        eot = max([int(c.info.get("eot", 1)) for c in attacked] or [1])
        if eot <= 1:
            bad.append(f"{t}/{d}")
            lines.append(f"{t}/{d} ({why}): " + ("no attack cell" if not attacked else
                                                 "no attack averaged its gradient over draws (eot 1)"))
    if bad:
        return Indicator("randomized without EOT", FAIL, "; ".join(lines), tuple(bad))
    return Indicator("randomized without EOT", OK, f"{len(unstable)} randomized pipelines, each attacked "
                     "adaptively with EOT", tuple(f"{t}/{d}" for t, d in unstable))


def reference_checks(results: RunResults) -> Indicator:
    findings: list[str] = []
    cells: list[str] = []
    for c in results.cells:
        if c.cell.mode != CLEAN:
            continue
        where = f"{c.cell.train}/{c.cell.defense}"
        if c.info.get("probability_outputs"):
            findings.append(f"{where}: outputs are probabilities, not logits (gradients vanish on a saturated softmax)")
            cells.append(where)
        if c.info.get("unstable"):
            findings.append(f"{where}: outputs change between two identical calls (randomness, or dropout left on)")
            cells.append(where)
    for c, member, broken in square_breaks(results):
        findings.append(f"{_label(c)}: {member} broke {broken} samples the gradient members before it left robust "
                        "(gradient masking?)")
        cells.append(_label(c))
    if not findings:
        return Indicator("AutoAttack's checks", OK, "logits, not probabilities; outputs repeat between identical "
                         "calls; no gradient-free member broke what the gradient members left")
    return Indicator("AutoAttack's checks", NOTE, "; ".join(findings), tuple(dict.fromkeys(cells)))


def worst_case_gap(results: RunResults) -> Indicator:
    lines, cells, beyond = [], [], False
    for t in results.labels("train"):
        for d in results.labels("defense"):
            for b in results.budgets():
                w = results.worst_case(t, d, b)
                if w is None:
                    continue
                gap = w.weakest.accuracy - w.accuracy
                n = len(w.correct)
                p = max(w.accuracy / 100, 1 / max(n, 1))
                se = 100 * math.sqrt(p * (1 - p) / max(n, 1))
                beyond |= gap > 2 * se
                lines.append(f"{t}/{d} {b}: worst case {w.accuracy:.2f} %, best single attack "
                             f"{w.weakest.cell.attack} ({w.weakest.cell.mode}) {w.weakest.accuracy:.2f} %, gap "
                             f"{gap:.2f} points")
                cells.append(_label(w.weakest))
    if not lines:
        return Indicator("worst-case gap", NA, "no finished attack cell")
    head = ("no single attack suffices here (a gap beyond 2 standard errors); the headline is the worst case"
            if beyond else "the best single attack is within sampling noise of the worst case")
    return Indicator("worst-case gap", NOTE if beyond else OK, head + ": " + "; ".join(lines), tuple(cells))


CHECKS = (silent, incomplete, unconstrained, transfer_beats_adaptive, randomized_without_eot, reference_checks,
          worst_case_gap)


def audit(results: RunResults) -> list[Indicator]:
    """The seven indicators of a run, in the order a reviewer reads them."""
    return [check(results) for check in CHECKS]


def format_audit(indicators: list[Indicator]) -> str:
    """One table: indicator, verdict, the cells it concerns, what was found."""
    lines = ["| indicator | verdict | cells | finding |", "|---|---|---|---|"]
    for i in indicators:
        cells = ", ".join(i.cells[:4]) + (f" (+{len(i.cells) - 4})" if len(i.cells) > 4 else "")
        lines.append(f"| {i.name} | {i.verdict} | {cells or '—'} | {i.detail} |")
    return "\n".join(lines)
