"""Verdicts on a paper's claims by a written rule, from stored numbers.

Every claims row states its ``rule``; the verdict follows from the measured value's 95 %
interval and the paper's number or sign, never from a person's reading:

- ``value`` — the paper reports an accuracy P. Interval: Wilson's, over the n test images.
  **reproduced** when P lies inside the interval widened by the rule's ``tolerance`` (points,
  default 0); else **not reproduced** (the row says higher or lower, and by how much).
- ``gain`` — the paper reports "A beats B" (``sign`` +1) or the reverse (-1), optionally by G
  points (``paper``). Interval of A − B: paired (McNemar's variance, only discordant samples
  count) when both cells' per-sample results are stored, else unpaired (Wald, wider).
  **reproduced** when G lies inside the interval (widened by ``tolerance``); **direction** when
  the interval lies wholly on the paper's side of 0; **inconclusive** when it contains 0;
  **not reproduced** when it lies wholly on the other side.
- ``not comparable`` — another regime (another data set, network or threat model): the rule's
  ``why`` says which. ``not measured`` — nothing here measures it: ``why`` says why.

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
    return 100 * max(0.0, centre - half), 100 * min(1.0, centre + half)


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


REPRODUCED, DIRECTION, INCONCLUSIVE = "reproduced", "direction", "inconclusive"
NOT_REPRODUCED, NOT_COMPARABLE, NOT_MEASURED = "not reproduced", "not comparable", "not measured"
VERDICTS = (REPRODUCED, DIRECTION, INCONCLUSIVE, NOT_REPRODUCED, NOT_COMPARABLE, NOT_MEASURED)


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


def judge_value(measured: float, n: int, paper: float, tolerance: float = 0.0) -> Judged:
    """The ``value`` rule: a measured accuracy (percent over ``n``) against the paper's."""
    lo, hi = wilson(measured / 100 * n, n)
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
