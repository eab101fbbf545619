"""Verdicts on a paper's claims by a written rule, from stored numbers.

Every claims row states its ``rule``; the verdict follows from the measured value's 95 %
interval and the paper's number or sign, never from a person's reading:

- One tolerance for every row (:func:`tolerance`): the spread the paper itself reports for that
  number (the rule's ``paper_spread``: its ± over runs), else 0. A row never chooses its own
  (a rule with ``tolerance`` is refused), and where the tolerance is not 0 the row also shows its
  verdict at 0.
- ``value`` — the paper reports an accuracy P. Interval: Wilson's, over the n test images.
  **reproduced** when P lies inside the interval widened by the tolerance; else **not
  reproduced** (the row says higher or lower, and by how much).
- ``gain`` — the paper reports "A beats B" (``sign`` +1) or the reverse (-1), optionally by G
  points (``paper``). Interval of A − B: paired (McNemar's variance, only discordant samples
  count) when both cells' per-sample results are stored, else unpaired (Wald, wider).
  **reproduced** when G lies inside the interval (widened by the tolerance); **direction** when
  the interval lies wholly on the paper's side of 0; **inconclusive** when it contains 0;
  **not reproduced** when it lies wholly on the other side.
- Several training seeds (a claims file's ``seeds``: one stored run per seed): the measured
  value is their mean and the interval a two-level bootstrap over seeds and test images
  (:func:`seed_bootstrap`), for both rules; for ``value`` never narrower than Wilson's over
  every seed's images together (the bootstrap collapses to a point when every seed scores 0 or
  100 %, where a binomial interval does not).
- ``not comparable`` — another regime (another data set, network or threat model): the rule's
  ``why`` says which. ``not measured`` — nothing here measures it: ``why`` says why.
- A row that was the target of a calibration (a stand-in's eps chosen to land near the paper's
  number: the claim's ``calibration``) is shown with its numbers and the verdict **calibration
  target**: it was made to agree, so it is not evidence and never counts as reproduced.
- A row measured with another attack or protocol than the paper's (the claim's ``substitute``
  says which: e.g. the DLR loss where the paper used CE) gets **our addition**, its rule's
  verdict beside it: only the paper's own attack and protocol can reproduce the paper.
- A ``gain`` measured from a base row the table calls **not comparable** is not comparable.
- One paper claim judged in several stored runs (rows sharing a ``paper_claim`` id) gets one
  combined line (:func:`combine`): the verdict of the run with the most evidence (most training
  seeds, then most test images; between runs with as much, the verdict least favourable to the
  paper) among the verdicts that count (reproduced, direction, inconclusive, not reproduced), and
  every counted verdict of another run on the other side of the paper's (reproduced or direction
  against not reproduced) is named beside it as a conflict.

No verdict is given without n: a run stored before summaries recorded their sizes says so.
"""

from __future__ import annotations

import math

import attrs
import numpy as np

Z95 = 1.959963984540054


def wilson(correct: float, n: int, z: float = Z95) -> tuple[float, float]:
    """95 % Wilson score interval of a proportion, in percent (``correct`` successes of ``n``)."""
    if n <= 0:
        raise ValueError("an interval needs at least one sample")
    p = correct / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    low = 0.0 if correct <= 0 else max(0.0, centre - half)  # exact at the ends: no rounding residue above 0
    high = 1.0 if correct >= n else min(1.0, centre + half)
    return 100 * low, 100 * high


def binomial_upper(k: int, n: int, level: float = 0.95) -> float:
    """One-sided exact (Clopper–Pearson) upper bound, in percent, on a proportion seen ``k`` times
    in ``n``: the largest p with P(X <= k | n, p) >= 1 − level. Used where a small sample must bound
    a rate from above (fast AutoAttack's check: how much robust accuracy it may overstate)."""
    if n <= 0:
        raise ValueError("a bound needs at least one sample")
    if k >= n:
        return 100.0

    def cdf(p: float) -> float:
        return sum(math.exp(math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
                           + i * math.log(p) + (n - i) * math.log1p(-p)) for i in range(k + 1))

    lo, hi = k / n, 1.0
    for _ in range(60):  # bisection: cdf falls as p grows
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if cdf(mid) > 1 - level else (lo, mid)
    return 100 * hi


def unpaired_difference(p1: float, n1: int, p2: float, n2: int, z: float = Z95) -> tuple[float, float, float]:
    """(difference, low, high) of two accuracies in percent, independent samples (Wald)."""
    a, b = p1 / 100, p2 / 100
    se = math.sqrt(a * (1 - a) / n1 + b * (1 - b) / n2)
    d = a - b
    return 100 * d, 100 * (d - z * se), 100 * (d + z * se)


def paired_difference(a: np.ndarray, b: np.ndarray, z: float = Z95) -> tuple[float, float, float]:
    """(difference, low, high) in percent of two per-sample ``correct`` arrays on the same images
    (the variance of McNemar's test: only the discordant samples count)."""
    a, b = np.asarray(a, bool), np.asarray(b, bool)
    n = len(a)
    only_a, only_b = float((a & ~b).sum()), float((b & ~a).sum())
    d = (only_a - only_b) / n
    var = ((only_a + only_b) / n - d * d) / n
    se = math.sqrt(max(var, 0.0))
    return 100 * d, 100 * (d - z * se), 100 * (d + z * se)


def seed_bootstrap(a: list[np.ndarray], b: list[np.ndarray] | None = None, reps: int = 2000, seed: int = 0,
                   same_images: bool = False) -> tuple[float, float, float]:
    """(mean, low, high) in percent over several training seeds: the mean accuracy of ``a`` (one
    per-sample ``correct`` array per seed), or with ``b`` the mean paired difference A − B (same
    images within a seed). The 95 % interval is a two-level bootstrap: draw the seeds with
    replacement, then the test images (the same draw for A and B; with ``same_images``, when every
    seed was evaluated on the same images, one draw shared by all seeds), so the spread between
    retrained models widens it as the test-set noise does."""
    rng = np.random.default_rng(seed)
    diffs = [np.asarray(x, float) - (0.0 if b is None else np.asarray(y, float))
             for x, y in zip(a, b if b is not None else a)]
    if same_images and len({len(d) for d in diffs}) != 1:
        raise ValueError("same_images needs one array length for every seed")
    mean = float(np.mean([d.mean() for d in diffs]))
    stats = np.empty(reps)
    for r in range(reps):
        picked = rng.integers(len(diffs), size=len(diffs))
        shared = rng.integers(len(diffs[0]), size=len(diffs[0])) if same_images else None
        stats[r] = np.mean([diffs[k][shared if same_images else rng.integers(len(diffs[k]), size=len(diffs[k]))].mean()
                            for k in picked])
    low, high = np.percentile(stats, [2.5, 97.5])
    return 100 * mean, 100 * float(low), 100 * float(high)


REPRODUCED, DIRECTION, INCONCLUSIVE = "reproduced", "direction", "inconclusive"
NOT_REPRODUCED, NOT_COMPARABLE, NOT_MEASURED = "not reproduced", "not comparable", "not measured"
CALIBRATION, OUR_ADDITION = "calibration target", "our addition"
VERDICTS = (REPRODUCED, DIRECTION, INCONCLUSIVE, NOT_REPRODUCED, NOT_COMPARABLE, NOT_MEASURED, CALIBRATION,
            OUR_ADDITION)


def tolerance(rule: dict) -> float:
    """The one tolerance rule, in points: the spread the paper reports for this number
    (``paper_spread``), else 0. A rule that sets its own ``tolerance`` is refused."""
    if "tolerance" in rule:
        raise ValueError("a claims row sets its own tolerance; the rule is one for every row: give the paper's "
                         "own reported spread as paper_spread, or nothing (0)")
    return float(rule.get("paper_spread", 0.0))


@attrs.frozen
class Judged:
    """A claim's verdict and the numbers it was made from (percent; ``low``/``high`` the 95 %
    interval of the value, or of the difference for a ``gain`` rule)."""

    verdict: str
    value: float | None = None
    low: float | None = None
    high: float | None = None
    n: int | None = None
    paired: bool | None = None
    why: str = ""

    def interval(self) -> str:
        if self.low is None:
            return "—"
        if self.paired is None:
            return f"{self.low:.1f}–{self.high:.1f} (n = {self.n})"
        return f"{self.value:+.1f} ({self.low:+.1f} to {self.high:+.1f}, {'paired' if self.paired else 'unpaired'})"


def judge_value(measured: float, n: int, paper: float, tolerance: float = 0.0,
                interval: tuple[float, float] | None = None) -> Judged:
    """The ``value`` rule: a measured accuracy (percent over ``n``) against the paper's; its
    interval is Wilson's unless given (several seeds: :func:`seed_bootstrap`)."""
    lo, hi = interval if interval is not None else wilson(measured / 100 * n, n)
    if lo - tolerance <= paper <= hi + tolerance:
        return Judged(REPRODUCED, measured, lo, hi, n)
    side = "higher" if measured > paper else "lower"
    return Judged(NOT_REPRODUCED, measured, lo, hi, n, why=f"{side} than the paper by {abs(measured - paper):.1f}")


def judge_gain(diff: float, lo: float, hi: float, n: int, sign: int, paired: bool, paper: float | None = None,
               tolerance: float = 0.0) -> Judged:
    """The ``gain`` rule: a difference A − B (percent, with its interval) the paper says has
    ``sign`` (+1: A higher) and, optionally, size ``paper``."""
    if paper is not None and lo - tolerance <= paper <= hi + tolerance:
        verdict = REPRODUCED
    elif sign * lo > 0 and sign * hi > 0:
        verdict = DIRECTION
    elif sign * lo < 0 and sign * hi < 0:
        verdict = NOT_REPRODUCED
    else:
        verdict = INCONCLUSIVE
    return Judged(verdict, diff, lo, hi, n, paired)


COUNTED = (REPRODUCED, DIRECTION, INCONCLUSIVE, NOT_REPRODUCED)
_FOR, _AGAINST = {REPRODUCED, DIRECTION}, {NOT_REPRODUCED}


@attrs.frozen
class RunVerdict:
    """One stored run's verdict on a paper claim: the run's name, the verdict, and its evidence."""

    run: str
    verdict: str
    seeds: int = 1
    n: int | None = None


def combine(judgements: list[RunVerdict]) -> tuple[str, str]:
    """(combined verdict, why) for one paper claim judged in several runs, by the rule in this
    module's docstring: the counted verdict with the most evidence decides; counted verdicts on
    the other side of the paper's are named as conflicts; nothing counted: "not counted" (or
    "not measured" when no run measured it)."""
    counted = [j for j in judgements if j.verdict in COUNTED]
    if not counted:
        if all(j.verdict == NOT_MEASURED for j in judgements):
            return NOT_MEASURED, "in no run"
        return "not counted", "no run's verdict counts"
    favour = {NOT_REPRODUCED: 0, INCONCLUSIVE: 1, DIRECTION: 2, REPRODUCED: 3}
    best = max(counted, key=lambda j: (j.seeds, j.n or 0, -favour[j.verdict]))  # a tie: the least favourable
    other = _AGAINST if best.verdict in _FOR else _FOR if best.verdict in _AGAINST else set()  # inconclusive: none
    conflicts = [j for j in counted if j.verdict in other]
    why = f"from {best.run} ({best.seeds} seed{'s' if best.seeds != 1 else ''}, n = {best.n})"
    if conflicts:
        why += "; conflicts with " + ", ".join(f"{j.run}: {j.verdict}" for j in conflicts)
    return best.verdict, why
