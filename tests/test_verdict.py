"""Verdicts by a written rule: intervals against known values, and a claims table rendered from a
stored summary with sizes."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest

from advx.evaluation import verdict

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import readme_tables  # noqa: E402


def test_wilson_matches_the_textbook_values():
    lo, hi = verdict.wilson(50, 100)
    assert lo == pytest.approx(40.38, abs=0.01) and hi == pytest.approx(59.62, abs=0.01)
    lo, hi = verdict.wilson(0, 20)
    assert lo == 0 and hi == pytest.approx(16.11, abs=0.01)


def test_paired_difference_counts_only_discordant_samples():
    a = np.array([1, 1, 1, 1, 0, 0, 1, 1, 1, 1] * 20, bool)
    b = np.array([1, 1, 1, 1, 0, 0, 0, 1, 1, 1] * 20, bool)   # b loses one sample in ten
    d, lo, hi = verdict.paired_difference(a, b)
    assert d == pytest.approx(10.0) and lo > 0  # 20 discordant samples, all one way: beyond noise
    d2, lo2, hi2 = verdict.unpaired_difference(100 * a.mean(), len(a), 100 * b.mean(), len(b))
    assert d2 == pytest.approx(d) and hi2 - lo2 > hi - lo  # the unpaired interval is wider


def test_value_and_direction_rules():
    assert verdict.value_verdict(88.0, 2000, 88.5)[1] == "consistent"
    assert verdict.value_verdict(80.0, 2000, 88.5)[1] == "lower than the paper by 8.5 points"
    assert verdict.direction_verdict(3.0, 1.0, 5.0, +1, True)[1] == "reproduced"
    assert verdict.direction_verdict(-3.0, -5.0, -1.0, +1, True)[1] == "contradicted"
    assert verdict.direction_verdict(1.0, -1.0, 3.0, +1, False)[1] == "inconclusive"


def summary(tmp_path, sizes):
    s = {"tables": [{"title": "accuracy (%) — oblivious attacks", "columns": ["train", "defense", "clean", "PGD"],
                     "rows": [["base", "none", 90.0, 40.0], ["soft", "none", 91.0, 48.0]]}]}
    if sizes:
        s["sizes"] = {"test": 500}
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(s))
    claims = {"summary": str(path), "claims": [
        {"claim": "clean", "paper": "89.0", "setting": "s", "verdict": "why",
         "measured": {"table": "accuracy", "row": ["base", "none"], "column": "clean"},
         "rule": {"kind": "value", "paper": 89.0}},
        {"claim": "soft labels raise PGD accuracy", "paper": "+9", "setting": "s", "verdict": "why",
         "measured": {"table": "accuracy", "row": ["soft", "none"], "column": "PGD"},
         "rule": {"kind": "direction", "sign": 1,
                  "minus": {"table": "accuracy", "row": ["base", "none"], "column": "PGD"}}}]}
    cpath = tmp_path / "claims.json"
    cpath.write_text(json.dumps(claims))
    return cpath


def test_a_claims_table_gets_intervals_and_verdicts_from_the_stored_sizes(tmp_path):
    table = readme_tables.render_claims(summary(tmp_path, sizes=True))
    assert "| claim | paper | measured | 95 % interval | verdict by rule | note | setting |" in table
    assert "| clean | 89.0 | 90.00 | 87.1–92.3 (n = 500) | consistent | why | s |" in table
    assert "+8.0 (+1.9 to +14.1, unpaired) | reproduced" in table


def test_no_verdict_without_sizes(tmp_path):
    assert "no verdict: the stored run predates sizes" in readme_tables.render_claims(summary(tmp_path, sizes=False))
