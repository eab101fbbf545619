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


def test_value_and_gain_rules():
    assert verdict.judge_value(88.0, 2000, 88.5).verdict == "reproduced"
    lower = verdict.judge_value(80.0, 2000, 88.5)
    assert lower.verdict == "not reproduced" and lower.why == "lower than the paper by 8.5"
    assert verdict.judge_value(80.0, 2000, 83.0, tolerance=1.5).verdict == "reproduced"  # 78.2-81.7, +1.5
    assert verdict.judge_gain(3.0, 1.0, 5.0, 500, +1, True).verdict == "direction"
    assert verdict.judge_gain(3.0, 1.0, 5.0, 500, +1, True, paper=4.0).verdict == "reproduced"
    assert verdict.judge_gain(3.0, 1.0, 5.0, 500, +1, True, paper=22.9).verdict == "direction"
    assert verdict.judge_gain(-3.0, -5.0, -1.0, 500, +1, True).verdict == "not reproduced"
    assert verdict.judge_gain(1.0, -1.0, 3.0, 500, +1, False).verdict == "inconclusive"


def summary(tmp_path, sizes, per_sample=None):
    s = {"tables": [{"title": "accuracy (%) — oblivious attacks", "columns": ["train", "defense", "clean", "PGD"],
                     "rows": [["base", "none", 90.0, 40.0], ["soft", "none", 91.0, 48.0]]}], "seed": 0}
    if sizes:
        s["sizes"] = {"test": 500}
    if per_sample is not None:
        s["per_sample"] = "per_sample.npz"
        cells = [{"train": t, "defense": "none", "attack": "PGD", "mode": "oblivious", "key": k, "budget": "linf 0.1"}
                 for k, t in enumerate(["base", "soft"])]
        np.savez_compressed(tmp_path / "per_sample.npz", cells=np.array(json.dumps(cells)),
                            **{f"{k}_index": np.arange(500) for k in range(2)},
                            **{f"{k}_correct": per_sample[k] for k in range(2)})
    path = tmp_path / "summary.json"
    path.write_text(json.dumps(s))
    claims = {"summary": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path), "claims": [
        {"claim": "clean", "paper": "89.0", "setting": "s", "note": "why",
         "measured": {"table": "accuracy", "row": ["base", "none"], "column": "clean"},
         "rule": {"kind": "value", "paper": 89.0}},
        {"claim": "soft labels raise PGD accuracy", "paper": "+9", "setting": "s", "note": "why",
         "measured": {"table": "accuracy (%) — oblivious attacks", "row": ["soft", "none"], "column": "PGD"},
         "rule": {"kind": "gain", "sign": 1,
                  "minus": {"table": "accuracy (%) — oblivious attacks", "row": ["base", "none"], "column": "PGD"}}},
        {"claim": "CIFAR-100", "paper": "Table 2", "setting": "—", "note": "",
         "rule": {"kind": "not measured", "why": "no CIFAR-100 here"}}]}
    cpath = tmp_path / "claims.json"
    cpath.write_text(json.dumps(claims))
    return cpath


def test_a_claims_table_gets_intervals_and_verdicts_from_the_stored_sizes(tmp_path):
    table = readme_tables.render_claims(summary(tmp_path, sizes=True))
    assert "| claim | paper | measured | 95 % interval | verdict (by rule) | note | setting |" in table
    assert "| clean | 89.0 | 90.00 | 87.1–92.3 (n = 500) | reproduced | why | s |" in table
    assert "+8.0 (+1.9 to +14.1, unpaired) | direction" in table
    assert "| CIFAR-100 | Table 2 | not measured | — | not measured (no CIFAR-100 here) |" in table


def test_a_gain_is_paired_when_the_runs_stored_their_per_sample_results(tmp_path):
    rng = np.random.default_rng(0)
    base = rng.random(500) < 0.40
    soft = base | (rng.random(500) < 0.14)  # soft keeps every sample base keeps, and wins some more
    path = summary(tmp_path, sizes=True, per_sample=[base, soft])
    seen = {}
    table = readme_tables.render_claims(path, write=True, seen=seen)
    d, lo, hi = verdict.paired_difference(soft, base)
    assert f"{d:+.1f} ({lo:+.1f} to {hi:+.1f}, paired) | direction" in table
    stored = json.loads(path.read_text())["claims"]
    assert stored[1]["result"] == {"verdict": "direction", "measured": round(d, 2), "low": round(lo, 2),
                                   "high": round(hi, 2), "n": 500, "paired": True, "seeds": [0], "why": ""}
    assert seen["verdicts"] == ["reproduced", "direction", "not measured"] and not seen["stale"]
    assert readme_tables.verdict_counts(seen["verdicts"]).startswith(
        "Verdicts by the written rule (`advx.evaluation.verdict`) over 3 claims: reproduced 1 · direction 1 · "
        "not measured 1.")


def test_a_stored_result_that_no_longer_follows_from_the_run_is_stale(tmp_path):
    path = summary(tmp_path, sizes=True)
    readme_tables.render_claims(path, write=True)
    seen = {}
    readme_tables.render_claims(path, seen=seen)
    assert not seen["stale"]
    data = json.loads(path.read_text())
    data["claims"][0]["result"]["verdict"] = "direction"  # typed by hand
    path.write_text(json.dumps(data))
    readme_tables.render_claims(path, seen=seen)
    assert seen["stale"]


def test_no_verdict_without_sizes(tmp_path):
    assert "no verdict (the stored run predates sizes" in readme_tables.render_claims(summary(tmp_path, sizes=False))


def test_no_gain_verdict_against_a_run_without_sizes(tmp_path):
    """The measured run states its sizes, the run it is compared with does not: no verdict."""
    cpath = summary(tmp_path, sizes=True)
    old = tmp_path / "old"
    old.mkdir()
    old_claims = json.loads(summary(old, sizes=False).read_text())
    claims = json.loads(cpath.read_text())
    claims["claims"][1]["rule"]["minus"]["summary"] = old_claims["summary"]
    cpath.write_text(json.dumps(claims))
    assert "no verdict (the compared run predates sizes" in readme_tables.render_claims(cpath)


def test_the_seed_bootstrap_widens_with_the_spread_between_retrained_models():
    rng = np.random.default_rng(1)
    same = [rng.random(500) < 0.6] * 3
    mean, lo, hi = verdict.seed_bootstrap(same, same_images=True)
    w_lo, w_hi = verdict.wilson(same[0].sum(), 500)
    assert mean == pytest.approx(100 * same[0].mean()) and abs(lo - w_lo) < 1.5 and abs(hi - w_hi) < 1.5
    spread = [rng.random(500) < p for p in (0.5, 0.6, 0.7)]
    _, lo2, hi2 = verdict.seed_bootstrap(spread, same_images=True)
    assert hi2 - lo2 > 2 * (hi - lo)  # ten points between seeds: far wider than one model's noise
    d, dlo, dhi = verdict.seed_bootstrap(spread, [x & (rng.random(500) < 0.9) for x in spread])
    assert d > 0 and dlo > 0  # B = A minus some samples: a positive paired gain in every seed


def seed_run(tmp_path, seed: int, base: np.ndarray, soft: np.ndarray, index: np.ndarray | None = None) -> str:
    """One stored run of a training seed (folder s<seed>): the base and soft cells' per-sample
    results on test images 0..499 (``summary``'s), or on ``index``, stored in a shuffled order
    as a run may; its PGD column their accuracies. Returns its summary path."""
    folder = tmp_path / f"s{seed}"
    folder.mkdir()
    summary(folder, sizes=True, per_sample=[base, soft])
    if index is not None:
        order = np.random.default_rng(seed).permutation(len(index))
        cells = json.loads(str(np.load(folder / "per_sample.npz")["cells"]))
        np.savez_compressed(folder / "per_sample.npz", cells=np.array(json.dumps(cells)),
                            **{f"{k}_index": index[order] for k in range(2)},
                            **{f"{k}_correct": arr[order] for k, arr in enumerate((base, soft))})
    data = json.loads((folder / "summary.json").read_text())
    data["seed"], data["sizes"]["test"] = seed, len(base)
    data["tables"][0]["rows"][0][3], data["tables"][0]["rows"][1][3] = 100 * base.mean(), 100 * soft.mean()
    (folder / "summary.json").write_text(json.dumps(data))
    return str(folder / "summary.json")


def seeds_claims(tmp_path, paths: list[str], paper: float, first: dict | None = None) -> Path:
    """s0's claims file over every seed's run, its first row the base's PGD accuracy against
    ``paper`` (or ``first``), written to tmp_path/claims.json."""
    claims = json.loads((tmp_path / "s0" / "claims.json").read_text())
    claims["seeds"] = paths
    claims["claims"][0]["measured"] = {"table": "accuracy (%) — oblivious attacks", "row": ["base", "none"],
                                       "column": "PGD"}
    claims["claims"][0]["rule"]["paper"] = paper
    if first is not None:
        claims["claims"] = [dict(claims["claims"][0], **first)]
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    return tmp_path / "claims.json"


def test_a_claims_table_over_three_seeds(tmp_path):
    """claims["seeds"] lists one stored run per training seed: measured is their mean, the interval
    the two-level bootstrap, and the result records the seeds."""
    rng = np.random.default_rng(2)
    paths = []
    for seed, p in enumerate((0.40, 0.44, 0.38)):
        base = rng.random(500) < p
        paths.append(seed_run(tmp_path, seed, base, base | (rng.random(500) < 0.1)))
    seeds_claims(tmp_path, paths, 40.0)
    table = readme_tables.render_claims(tmp_path / "claims.json", write=True)
    stored = json.loads((tmp_path / "claims.json").read_text())["claims"]
    a = [np.load(tmp_path / f"s{k}" / "per_sample.npz")[f"{0}_correct"] for k in range(3)]
    b = [np.load(tmp_path / f"s{k}" / "per_sample.npz")[f"{1}_correct"] for k in range(3)]
    mean, lo, hi = verdict.seed_bootstrap(a, same_images=True)
    assert stored[0]["result"]["seeds"] == [0, 1, 2] and stored[0]["result"]["low"] == round(lo, 2)
    assert "(mean of 3 seeds:" in table and f"{lo:.1f}–{hi:.1f} (n = 500)" in table
    d, dlo, dhi = verdict.seed_bootstrap(b, a, same_images=True)
    assert stored[1]["result"] == {"verdict": "direction", "measured": round(d, 2), "low": round(dlo, 2),
                                   "high": round(dhi, 2), "n": 500, "paired": True, "seeds": [0, 1, 2], "why": ""}


def test_seeds_on_nested_subsets_are_judged_on_the_images_they_share(tmp_path):
    """Seed 0 ran on 1,000 images, seeds 1 and 2 (retrained at less cost) on 500 of them: every
    seed is cut to those 500, in the mean shown, in n and in the same-images bootstrap."""
    rng = np.random.default_rng(3)
    kept = np.sort(rng.choice(1000, 500, replace=False))
    paths, base_cut, soft_cut = [], [], []
    for seed, (p, index) in enumerate([(0.40, np.arange(1000)), (0.44, kept), (0.38, kept)]):
        base = rng.random(len(index)) < p
        soft = base | (rng.random(len(index)) < 0.1)
        paths.append(seed_run(tmp_path, seed, base, soft, index))
        on_kept = np.isin(index, kept)
        base_cut.append(base[on_kept])
        soft_cut.append(soft[on_kept])
    seeds_claims(tmp_path, paths, 40.0)
    table = readme_tables.render_claims(tmp_path / "claims.json", write=True)
    stored = json.loads((tmp_path / "claims.json").read_text())["claims"]
    mean, lo, hi = verdict.seed_bootstrap(base_cut, same_images=True)
    per_seed = ", ".join(f"{100 * x.mean():.1f}" for x in base_cut)
    assert f"{mean:.2f} (mean of 3 seeds on the 500 test images they share: {per_seed})" in table
    assert stored[0]["result"]["n"] == 500 and stored[0]["result"]["low"] == round(lo, 2)
    d, dlo, dhi = verdict.seed_bootstrap(soft_cut, base_cut, same_images=True)
    assert stored[1]["result"]["measured"] == round(d, 2) and stored[1]["result"]["n"] == 500
    assert (stored[1]["result"]["low"], stored[1]["result"]["high"]) == (round(dlo, 2), round(dhi, 2))


def test_the_worst_case_of_a_row_with_a_budget_ands_only_that_budgets_cells(tmp_path):
    cells = [{"train": "base", "defense": "none", "attack": a, "mode": m, "key": k, "budget": b}
             for k, (a, m, b) in enumerate([("clean", "clean", ""), ("FGSM", "oblivious", "linf 0.1"),
                                            ("APGD", "oblivious", "linf 0.1"), ("FGSM3", "oblivious", "linf 0.3")])]
    correct = [np.array([1, 1, 1, 0], bool), np.array([1, 1, 0, 0], bool), np.array([1, 0, 1, 0], bool),
               np.zeros(4, bool)]
    np.savez_compressed(tmp_path / "per_sample.npz", cells=np.array(json.dumps(cells)),
                        **{f"{k}_index": np.arange(4) for k in range(4)}, **{f"{k}_correct": c for k, c in enumerate(correct)})
    s = {"per_sample": "per_sample.npz", "_path": str(tmp_path / "summary.json")}
    ref = {"table": "robust accuracy (%) — per-sample worst case", "row": ["base", "none", "linf 0.1"], "column": "robust"}
    index, worst = readme_tables.per_sample(s, ref)
    assert worst.tolist() == [True, False, False, False]  # clean AND both 0.1 attacks; the 0.3 cell left out
    assert readme_tables.per_sample(s, dict(ref, row=["base", "none"])) is None  # two budgets: name one


def test_one_tolerance_rule_the_papers_spread_or_zero_and_a_row_cannot_choose_its_own():
    from advx.evaluation.verdict import tolerance

    assert tolerance({"kind": "value", "paper": 3.6}) == 0.0
    assert tolerance({"kind": "value", "paper": 3.6, "paper_spread": 0.8}) == 0.8
    with pytest.raises(ValueError, match="one for every row"):
        tolerance({"kind": "value", "paper": 3.6, "tolerance": 5.0})


def test_wilson_is_exact_at_the_ends_so_zero_measured_agrees_with_zero_reported():
    """0 of 2,000 used to give a lower bound of 1e-17, so a paper's 0 % was 'not reproduced'."""
    from advx.evaluation.verdict import REPRODUCED, judge_value, wilson

    assert wilson(0, 2000)[0] == 0.0 and wilson(2000, 2000)[1] == 100.0
    assert judge_value(0.0, 2000, 0.0).verdict == REPRODUCED
    assert judge_value(0.05, 2000, 0.0).verdict != REPRODUCED  # 1 of 2,000 robust is not the paper's 0


def test_a_calibration_target_is_shown_but_never_counted_as_reproduced():
    import json
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(root / "benchmarks"))
    try:
        import readme_tables
    finally:
        sys.path.remove(str(root / "benchmarks"))
    seen: dict = {}
    text = readme_tables.render_claims(root / "plugins/fixer/results/fixer_fmnist_16/claims.json", seen=seen)
    claims = json.loads((root / "plugins/fixer/results/fixer_fmnist_16/claims.json").read_text())["claims"]
    calibrated = [c for c in claims if c.get("calibration")]
    assert calibrated and all(c["result"]["verdict"] == "calibration target" for c in calibrated)
    assert seen["verdicts"].count("calibration target") == len(calibrated)
    assert "calibration target (" in text and "not evidence" in text


def test_no_stored_claim_counts_a_substitute_a_calibration_or_a_gain_from_an_incomparable_base():
    """Over every claims file: a row with another attack or protocol than the paper's is 'our
    addition', a calibration target is 'calibration target', and a gain whose base row is 'not
    comparable' is not comparable — in the stored results the READMEs render."""
    import glob
    import json

    root = Path(__file__).resolve().parents[1]
    checked = {"substitute": 0, "calibration": 0, "incomparable base": 0}
    for path in glob.glob(str(root / "plugins/*/results/*/claims.json")):
        claims = json.loads(Path(path).read_text())

        def key(ref):
            return json.dumps([ref.get("summary", claims["summary"]), ref["table"], ref["row"], ref["column"]])

        incomparable = {key(c["measured"]) for c in claims["claims"]
                        if c.get("measured") and (c.get("rule") or {}).get("kind") == "not comparable"}
        for c in claims["claims"]:
            verdict = (c.get("result") or {}).get("verdict")
            minus = (c.get("rule") or {}).get("minus")
            if minus is not None and key(minus) in incomparable:
                assert verdict == "not comparable", (path, c["claim"])
                checked["incomparable base"] += 1
            elif c.get("calibration"):
                assert verdict == "calibration target", (path, c["claim"])
                checked["calibration"] += 1
            elif c.get("substitute"):
                assert verdict == "our addition", (path, c["claim"])
                checked["substitute"] += 1
            assert "tolerance" not in (c.get("rule") or {}), (path, c["claim"])
    assert all(checked.values()), checked  # each case occurs in the stored claims


def test_one_claim_judged_in_several_runs_is_combined_by_the_strongest_evidence():
    R = verdict.RunVerdict
    v, why = verdict.combine([R("a", "not reproduced", 1, 500), R("b", "stale run", 1, 500),
                              R("c", "direction", 3, 250)])
    assert v == "direction" and why == "from c (3 seeds, n = 250); conflicts with a: not reproduced"
    v, why = verdict.combine([R("a", "inconclusive", 1, 2000), R("b", "reproduced", 1, 500)])
    assert v == "inconclusive" and "conflicts" not in why  # more images, one seed each: a decides
    v, why = verdict.combine([R("a", "inconclusive", 1, 2000), R("b", "not reproduced", 1, 2000)])
    assert v == "not reproduced" and why == "from b (1 seed, n = 2000)"  # as much evidence: the least favourable
    v, why = verdict.combine([R("a", "direction", 1, 2000), R("b", "not reproduced", 1, 2000)])
    assert v == "not reproduced" and why.endswith("conflicts with a: direction")
    assert verdict.combine([R("a", "not comparable"), R("b", "calibration target", 3, 250)])[0] == "not counted"
    assert verdict.combine([R("a", "not measured"), R("b", "not measured")]) == ("not measured", "in no run")


def test_the_combined_block_reads_each_runs_stored_verdict(tmp_path):
    for run, result in (("r1", {"verdict": "not reproduced", "n": 500, "seeds": [0]}),
                        ("r2", {"verdict": "reproduced", "n": 250, "seeds": [0, 1, 2]}),
                        ("r3", None)):
        (tmp_path / run).mkdir()
        row = {"claim": "x", "paper": "+12.7", "paper_claim": "ours over MI-OL"}
        rows = [dict(row, result=result)] if result else [{"claim": "y", "paper": "1", "paper_claim": "only here"}]
        (tmp_path / run / "claims.json").write_text(json.dumps({"summary": "s", "claims": rows}))
    table = readme_tables.render_combined(tmp_path)
    assert ("| ours over MI-OL | +12.7 | r1: not reproduced (n = 500); r2: reproduced (3 seeds, n = 250) | "
            "reproduced (from r2 (3 seeds, n = 250); conflicts with r1: not reproduced) |") in table
    assert "only here" not in table  # judged in one run: no combined line


def test_three_seeds_all_at_zero_keep_a_binomial_interval(tmp_path):
    """Every seed scores 0 % on 500 images: the bootstrap collapses to 0-0, but the value rule's
    interval stays Wilson's over the 1,500 images, so a paper's 0.01 % is inside it."""
    zeros = np.zeros(500, bool)
    paths = [seed_run(tmp_path, seed, zeros, zeros) for seed in range(3)]
    seeds_claims(tmp_path, paths, 0.01, first={"claim": "none left", "paper": "0.01", "note": "",
                                               "rule": {"kind": "value", "paper": 0.01}})
    readme_tables.render_claims(tmp_path / "claims.json", write=True)
    result = json.loads((tmp_path / "claims.json").read_text())["claims"][0]["result"]
    assert result["verdict"] == "reproduced" and result["low"] == 0.0
    assert result["high"] == round(verdict.wilson(0, 1500)[1], 2) > 0.2
