"""``advx audit RUN.h5``: the indicators a reviewer checks before believing a robustness number,
each computed from the stored per-sample arrays and given a verdict by a written rule.

The six indicators and their rules (Carlini et al., "On Evaluating Adversarial Robustness", 2019;
Croce & Hein, ICML 2020, Section 5; Tramèr et al., "On Adaptive Attacks to Adversarial Example
Defenses", NeurIPS 2020):

- ``silent``: a finished cell whose samples do not match its pipeline's clean cell (missing or
  repeated test rows), a stored loss or distance that is NaN or infinite, a prediction outside the
  class range, or an attack that moved none of the samples it attacked. FAIL on any.
- ``incomplete``: a cell not marked done (interrupted or crashed). FAIL on any.
- ``unconstrained``: minimal-norm attacks (DeepFool, CW: no eps) must stay out of the robust
  accuracy. FAIL when such a cell shares a budget with bounded attacks, or when a cell has no
  recorded budget (a run file too old to tell); otherwise ok, naming the cells kept apart.
- ``transfer beats adaptive``: an adaptive cell with higher accuracy than the oblivious cell of the
  same attack, or a black-box cell above the transfer one. FAIL on any (advx's adaptive cells
  also try the oblivious adversarial per sample, so a new run never fails it); McNemar z given.
- ``randomized without EOT``: a pipeline flagged randomized, or whose predictions changed between
  two passes (the sanity check's warning), attacked adaptively with eot 1 or not adaptively at all.
  FAIL on any.
- ``worst-case gap``: how far the per-sample worst case lies below the best single attack (the
  weakest cell). A note, never a failure: advx reports the worst case; a gap beyond sampling noise
  (more than 2 standard errors of a proportion) says no single attack would have sufficed.
"""

from __future__ import annotations

import math
import re
from typing import Any

import attrs
import numpy as np

from .cells import CLEAN, NONE
from .results import CellResult, RunResults, at_rows, cell_budget
from .sanity import mcnemar_z

OK, FAIL, NOTE, NA = "ok", "FAIL", "note", "n/a"
FLOATS = ("loss", "linf", "l2")


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
    cells = _attacked(results)
    if not cells:
        return Indicator("unconstrained", NA, "no attack cells")
    unknown = [c for c in cells if not cell_budget(c)]
    if unknown:
        return Indicator("unconstrained", FAIL, f"{len(unknown)} attack cells have no recorded budget (a run file "
                         "written before budgets were stored): minimal-norm attacks cannot be told apart",
                         tuple(_label(c) for c in unknown))
    minimal = [c for c in cells if cell_budget(c) == "unbounded"]
    if not minimal:
        return Indicator("unconstrained", OK, "no minimal-norm attack ran")
    return Indicator("unconstrained", OK, f"{len(minimal)} minimal-norm cells kept out of robust accuracy (their "
                     "budget is 'unbounded', a worst case of its own)", tuple(_label(c) for c in minimal))


_COUNTERPART = {"adaptive": "oblivious", "black-box": "transfer"}


def transfer_beats_adaptive(results: RunResults) -> Indicator:
    pairs, bad, lines = 0, [], []
    for c in _attacked(results):
        other_mode = _COUNTERPART.get(c.cell.mode)
        if other_mode is None or not c.finished:
            continue
        o = results.get(c.cell.train, c.cell.defense, c.cell.attack, other_mode)
        if o is None or o.cell.mode != other_mode or not o.finished:
            continue
        pairs += 1
        a_ok, o_ok = _aligned(c, o)
        if a_ok.mean() > o_ok.mean():
            only_a, only_o, z = mcnemar_z(a_ok, o_ok)
            bad.append(_label(c))
            lines.append(f"{_label(c)} {100 * a_ok.mean():.2f} % > {other_mode} {100 * o_ok.mean():.2f} % "
                         f"(McNemar z = {z:.1f}, {only_a} vs {only_o} samples)")
    if not pairs:
        return Indicator("transfer beats adaptive", NA, "no adaptive/oblivious or black-box/transfer pair ran")
    if bad:
        return Indicator("transfer beats adaptive", FAIL, "; ".join(lines), tuple(bad))
    return Indicator("transfer beats adaptive", OK, f"{pairs} pairs: no adaptive or black-box cell above its "
                     "oblivious or transfer counterpart")


def _aligned(a: CellResult, b: CellResult) -> tuple[np.ndarray, np.ndarray]:
    """Both cells' ``correct`` on the test rows they share, in one order."""
    common = np.intersect1d(a.arrays["index"], b.arrays["index"])
    return at_rows(a, common).astype(bool), at_rows(b, common).astype(bool)


_UNSTABLE = re.compile(r"^\[(?P<train>[^/\]]+)/(?P<defense>[^\]]+)\] predictions change from run to run")


def randomized_without_eot(results: RunResults) -> Indicator:
    unstable: dict[tuple[str, str], str] = {}
    for c in results.cells:
        if c.info.get("randomized"):
            unstable[(c.cell.train, c.cell.defense)] = "flagged randomized"
    for w in results.warnings:
        m = _UNSTABLE.match(w)
        if m:
            unstable.setdefault((m["train"], m["defense"]), "predictions changed between two passes")
    unstable.pop(("", NONE), None)
    if not unstable:
        return Indicator("randomized without EOT", NA, "no randomized or unstable pipeline")
    cfg = results.header.get("config", {}) if isinstance(results.header, dict) else {}
    default_eot = int(((cfg.get("evaluate") or {}).get("eot") or 1)) if isinstance(cfg, dict) else 1
    bad, lines = [], []
    for (t, d), why in unstable.items():
        adaptive = [c for c in results.cells if (c.cell.train, c.cell.defense) == (t, d) and c.cell.mode == "adaptive"]
        if not adaptive:
            bad.append(f"{t}/{d}")
            lines.append(f"{t}/{d} ({why}): no adaptive cell")
            continue
        eots = {int(c.info.get("eot", _variant_eot(cfg, d, default_eot))) for c in adaptive}
        if min(eots) <= 1:
            bad.append(f"{t}/{d}")
            lines.append(f"{t}/{d} ({why}): attacked adaptively with eot 1")
    if bad:
        return Indicator("randomized without EOT", FAIL, "; ".join(lines), tuple(bad))
    return Indicator("randomized without EOT", OK, f"{len(unstable)} randomized pipelines, each attacked "
                     "adaptively with EOT", tuple(f"{t}/{d}" for t, d in unstable))


def _variant_eot(cfg: Any, defense: str, default: int) -> int:
    for d in (cfg.get("defenses") or []) if isinstance(cfg, dict) else []:
        if isinstance(d, dict) and d.get("label") == defense and d.get("eot"):
            return int(d["eot"])
    return default


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


CHECKS = (silent, incomplete, unconstrained, transfer_beats_adaptive, randomized_without_eot, worst_case_gap)


def audit(results: RunResults) -> list[Indicator]:
    """The six indicators of a run, in the order a reviewer reads them."""
    return [check(results) for check in CHECKS]


def format_audit(indicators: list[Indicator]) -> str:
    """One table: indicator, verdict, the cells it concerns, what was found."""
    lines = ["| indicator | verdict | cells | finding |", "|---|---|---|---|"]
    for i in indicators:
        cells = ", ".join(i.cells[:4]) + (f" (+{len(i.cells) - 4})" if len(i.cells) > 4 else "")
        lines.append(f"| {i.name} | {i.verdict} | {cells or '—'} | {i.detail} |")
    return "\n".join(lines)
