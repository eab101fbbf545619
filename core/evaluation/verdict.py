"""Verdicts on a paper's claims by a written rule, from stored numbers: a measured accuracy gets
its 95 % interval, and the verdict follows from where the paper's number or sign falls.

The rules (what ``benchmarks/readme_tables.py`` prints in a claims table's "verdict by rule"):

- ``value`` (a paper's accuracy against ours): the 95 % Wilson interval of the measured
  accuracy over the n test images. **consistent** when the paper's number lies inside it, else
  **higher** or **lower** than the paper, by how many points.
- ``direction`` (a paper's "A beats B"): the 95 % interval of the difference A − B — paired
  (McNemar's variance) when both cells' per-sample results are stored, else unpaired (a wider,
  conservative interval). **reproduced** when the interval lies wholly on the paper's side of 0,
  **contradicted** when wholly on the other side, **inconclusive** when it contains 0.

No verdict is given without n: a run stored before summaries recorded their sizes says so.
"""

from __future__ import annotations

import math

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


def value_verdict(measured: float, n: int, paper: float) -> tuple[str, str]:
    """(interval text, verdict) for a measured accuracy (percent) against the paper's number."""
    lo, hi = wilson(measured / 100 * n, n)
    interval = f"{lo:.1f}–{hi:.1f} (n = {n})"
    if lo <= paper <= hi:
        return interval, "consistent"
    side = "higher" if measured > paper else "lower"
    return interval, f"{side} than the paper by {abs(measured - paper):.1f} points"


def direction_verdict(diff: float, lo: float, hi: float, sign: int, paired: bool) -> tuple[str, str]:
    """(interval text, verdict) for a difference A − B the paper says has ``sign`` (+1: A higher)."""
    interval = f"{diff:+.1f} ({lo:+.1f} to {hi:+.1f}, {'paired' if paired else 'unpaired'})"
    if sign * lo > 0 and sign * hi > 0:
        return interval, "reproduced"
    if sign * lo < 0 and sign * hi < 0:
        return interval, "contradicted"
    return interval, "inconclusive"
