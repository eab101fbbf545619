"""Regenerate the measured tables in the READMEs from the stored JSON they come from.

A README marks a generated table with two comment lines:

    <!-- table: plugins/counteract/results/counteract_fmnist/summary.json "robust accuracy" -->
    ...generated Markdown, never edited by hand...
    <!-- /table -->

The JSON is a ``summary.json`` written by ``advx run --report-dir`` / ``advx report`` (tables
under "tables", each {title, columns, rows}) or a benchmark JSON ({"table": {...}}). The quoted
text selects the first table whose title starts with it. Run ``python benchmarks/readme_tables.py``
to rewrite every marked block; ``--check`` exits 1 naming the blocks that differ (the test suite
runs it, so a README table cannot drift from its stored run).

A paper's claims table is marked the same way with ``<!-- claims: path/claims.json -->``. The
claims file holds what a person writes (the claim, the paper's number, the setting, a ``note``)
and each claim's ``rule``; the verdict, its 95 % interval and n are computed by the written rule
of ``advx.evaluation.verdict`` from the stored run (paired per-sample differences where the run
kept ``per_sample.npz``) and written back under ``result`` (``--check`` fails when a stored
result no longer follows from the run). Each measured value is a reference ``{"table": title
prefix, "row": [first cells], "column": name}`` into the summary the file names, looked up at
render time, never typed. ``<!-- verdict-counts -->`` blocks get the count per verdict over the
README's claims tables. ``<!-- combined: plugins/x/results -->`` blocks get one line per paper
claim judged in several of that folder's claims files (rows sharing a ``paper_claim`` id): each
run's verdict and the combined one by ``advx.evaluation.verdict.combine``.
"""

from __future__ import annotations

import argparse
import functools
import json
import re
import sys
from pathlib import Path

import attrs
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r'(<!-- table: (\S+) "([^"]*)" -->\n)(.*?)(<!-- /table -->)', re.S)
CLAIMS = re.compile(r'(<!-- claims: (\S+) -->\n)(.*?)(<!-- /claims -->)', re.S)
COUNTS = re.compile(r'(<!-- verdict-counts -->\n)(.*?)(<!-- /verdict-counts -->)', re.S)
COMBINED = re.compile(r'(<!-- combined: (\S+) -->\n)(.*?)(<!-- /combined -->)', re.S)


def fmt(v) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        if abs(v) < 1:
            return f"{v:.3f}"
        return f"{v:.2f}" if abs(v) < 10 and v != round(v, 1) else f"{v:.1f}"
    return str(v)


def render(source: Path, title: str) -> str:
    data = json.loads(source.read_text())
    if "tables" not in data and "table" not in data:  # a benchmark's flat record: one row per measured field
        rows = [[k, ", ".join(map(fmt, v)) if isinstance(v, list) else fmt(v)] for k, v in data.items()
                if k.startswith(title) and isinstance(v, (int, float, str, list))
                and k not in ("command", "config")]
        return "\n".join(["| measured | value |", "| --- | --- |", *(f"| {k} | {v} |" for k, v in rows)]) + "\n"
    tables = data.get("tables") or [data["table"]]
    table = next((t for t in tables if t["title"].startswith(title)), None)
    if table is None:
        raise SystemExit(f"{source}: no table titled {title!r}... (have: {[t['title'] for t in tables]})")
    lines = ["| " + " | ".join(table["columns"]) + " |", "|" + " --- |" * len(table["columns"])]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in table["rows"]]
    return "\n".join(lines) + "\n"


def lookup(summary: dict, ref: dict):
    """The value a claim's ``measured`` reference points at in a run's summary."""
    table = next((t for t in summary["tables"] if t["title"].startswith(ref["table"])), None)
    if table is None:
        raise SystemExit(f"no table titled {ref['table']!r}...")
    keys = ref["row"] if isinstance(ref["row"], list) else [ref["row"]]
    row = next((r for r in table["rows"] if [str(v) for v in r[:len(keys)]] == keys), None)
    if row is None or ref["column"] not in table["columns"]:
        raise SystemExit(f"{ref}: no such row or column in {table['title']!r}")
    return row[table["columns"].index(ref["column"])]


STALE = "stale run"
CHANGES = ROOT / "benchmarks" / "result_changes.toml"


@functools.cache
def result_changes() -> list[dict]:
    """The code changes that moved stored numbers (benchmarks/result_changes.toml), read once."""
    import tomllib

    return tomllib.loads(CHANGES.read_text())["change"]


def _applies(kind: str, config: dict) -> bool:
    if kind == "all":
        return True
    if kind == "defended":
        return bool(config.get("defense"))
    if kind == "square-l2-l1":
        return any(a.get("name") == "square" and a.get("norm", "linf") in ("l2", "l1") for a in config.get("attack", []))
    raise ValueError(f"{CHANGES}: unknown applies_to {kind!r}")


def staleness(summary: dict) -> list[str]:
    """Why a stored run cannot back a claim, or []: made from a dirty tree, or before a listed
    change that moves the numbers of a run like it."""
    if "versions" not in summary:  # a hand-made summary (tests); every stored run records its versions
        return []
    versions = summary["versions"]
    commit = str(versions.get("advx commit", "unknown") if isinstance(versions, dict) else "unknown")
    why = [f"made from a dirty tree ({commit.removesuffix('+dirty')[:8]}+dirty)"] if commit.endswith("+dirty") else []
    if commit in ("unknown", "not a git checkout"):
        why.append("its commit is not recorded")
    for change in result_changes():
        if summary["created"] < change["date"] and _applies(change["applies_to"], summary["config"]):
            why.append(f"made before {change['commit']} ({change['date'][:10]}: {change['why']})")
    return why


def render_claims(source: Path, write: bool = False, seen: dict | None = None) -> str:
    """The claims table; a ``measured`` reference may name its own ``summary`` (another stored run
    of the same plugin, e.g. a baseline run separately), else the file's. With ``write``, each
    ruled claim's numbers and verdict are stored back into the claims file under ``result``;
    ``seen`` collects the verdicts ("verdicts") and whether a stored result was stale ("stale")."""
    claims = json.loads(source.read_text())
    summaries: dict[str, dict] = {}

    def summary_of(ref: dict) -> dict:
        path = ref.get("summary", claims["summary"])
        if path not in summaries:
            summaries[path] = json.loads((ROOT / path).read_text())
            summaries[path]["_path"] = path
        return summaries[path]

    ruled = any("rule" in c for c in claims["claims"])
    head = ["claim", "paper", "measured", *(["95 % interval", "verdict (by rule)", "note"] if ruled else []),
            "setting", *([] if ruled else ["verdict"])]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    changed = False
    seeds = claims.get("seeds", [claims["summary"]])

    def key(ref: dict) -> str:
        return json.dumps([ref.get("summary", claims["summary"]), ref["table"], ref["row"], ref["column"]])

    @functools.cache
    def stale_of(path: str) -> list[str]:  # once per run, whatever the number of rows on it
        return staleness(summary_of({"summary": path}))

    # bases a person judged not comparable: a gain measured from one is not comparable either
    incomparable = {key(c["measured"]) for c in claims["claims"]
                    if c.get("measured") and (c.get("rule") or {}).get("kind") == "not comparable"}
    for c in claims["claims"]:
        # the runs behind this row, one per training seed (none: a row measured in a run of its own)
        runs = seeds if c.get("measured") is not None and "summary" not in c["measured"] else []
        if c.get("measured") is None:
            measured, value = "not measured", None
        elif len(runs) > 1:
            shared = seed_samples(summary_of, [c["measured"]], runs)
            if shared is not None and shared[1]:  # seeds judged on nested subsets: the images all share
                (per_seed,), _ = shared
                values = [100 * float(correct.mean()) for _, correct in per_seed]
                where = f" on the {len(per_seed[0][0])} test images they share"
            else:
                values = [lookup(summary_of(dict(c["measured"], summary=p)), c["measured"]) for p in seeds]
                where = ""
            value = float(np.mean(values))
            measured = f"{value:.2f} (mean of {len(values)} seeds{where}: {', '.join(f'{v:.1f}' for v in values)})"
        else:
            value = lookup(summary_of(c["measured"]), c["measured"])
            measured = f"{value:.2f}" if isinstance(value, float) else str(value)
        cells = [c["claim"], c["paper"], measured]
        note = c.get("note", c.get("verdict", ""))
        if ruled:
            judged = rule_verdict(c, value, summary_of, runs)
            minus = (c.get("rule") or {}).get("minus")
            behind = [*(runs or [c["measured"].get("summary", claims["summary"])] if c.get("measured") else []),
                      *([minus.get("summary", claims["summary"])] if minus else [])]
            stale = [f"{Path(p).parent.name} ({', '.join(w.split(' (')[0] for w in why)})" for p in dict.fromkeys(behind)
                     if (why := stale_of(p))]  # the reasons in full: result_changes.toml
            if minus is not None and key(minus) in incomparable:
                judged = attrs.evolve(judged, verdict="not comparable",
                                      why=f"measured from a base the table calls not comparable ({judged.verdict} "
                                          "by the rule)")
            elif c.get("calibration") and judged.verdict not in ("no rule", "no verdict"):
                judged = attrs.evolve(judged, verdict="calibration target",
                                      why=f"{judged.verdict} as calibrated, not evidence: {c['calibration']}")
            elif c.get("substitute") and judged.verdict not in ("no rule", "no verdict"):
                judged = attrs.evolve(judged, verdict="our addition",
                                      why=f"{judged.verdict} by the rule, with {c['substitute']}")
            elif stale and judged.verdict not in ("no rule", "no verdict", "not measured"):
                judged = attrs.evolve(judged, verdict=STALE,
                                      why=f"{judged.verdict} by the rule, not counted: " + "; ".join(stale))
            elif c.get("rule") and verdict_tolerance(c["rule"]) > 0:
                zero = rule_verdict(c, value, summary_of, runs, at_zero=True)
                judged = attrs.evolve(judged, why=(judged.why + "; " if judged.why else "")
                                      + f"at tolerance 0: {zero.verdict}")
            verdict_text = judged.verdict + (f" ({judged.why})" if judged.why else "")
            cells += [judged.interval(), verdict_text, note, c["setting"]]
            result = result_record(judged, c, summary_of, runs)
            changed |= c.get("result") != result
            c["result"] = result
            if seen is not None:
                seen.setdefault("verdicts", []).append(judged.verdict)
        else:
            cells += [c["setting"], note]
        lines.append("| " + " | ".join(str(v) for v in cells) + " |")
    if write and changed:
        source.write_text(json.dumps(claims, indent=1, ensure_ascii=False) + "\n")
    if seen is not None:
        seen["stale"] = seen.get("stale", False) or (changed and not write)
    return "\n".join(lines) + "\n"


def verdict_tolerance(rule: dict) -> float:
    from advx.evaluation import verdict

    return verdict.tolerance(rule) if rule.get("kind") in ("value", "gain") else 0.0


def result_record(judged, claim: dict, summary_of, runs: list[str]) -> dict:
    """What a claims row stores of its verdict: the numbers it was made from and the seeds."""
    paths = runs or ([claim["measured"].get("summary")] if claim.get("measured") else [])
    seeds = [summary_of({"summary": p} if p else {}).get("seed") for p in paths]
    rounded = {k: None if v is None else round(v, 2) for k, v in
               (("measured", judged.value), ("low", judged.low), ("high", judged.high))}
    return {"verdict": judged.verdict, **rounded, "n": judged.n, "paired": judged.paired,
            "seeds": [x for x in seeds if x is not None], "why": judged.why}


def per_sample(summary: dict, ref: dict):
    """The per-sample ``correct`` array (with test indices) behind a measured reference, from the
    run's per_sample.npz: an accuracy-table cell, or the worst case's AND over every cell of the
    row. None when the run stored no per-sample file or the table is not one of those."""
    if "_per_sample" not in summary:  # read once per run, whatever the number of claims on it
        name = summary.get("per_sample")
        path = ROOT / Path(summary["_path"]).parent / name if name else None
        summary["_per_sample"] = dict(np.load(path)) if path is not None and path.is_file() else None
    data = summary["_per_sample"]
    if data is None:
        return None
    cells = json.loads(str(data["cells"]))
    keys = ref["row"] if isinstance(ref["row"], list) else [ref["row"]]
    if len(keys) < 2:
        return None
    train, defense = keys[:2]

    def arrays(c: dict):
        return data[f"{c['key']}_index"], data[f"{c['key']}_correct"]

    mine = [c for c in cells if (c["train"], c["defense"]) == (train, defense)]
    if ref["column"] == "clean":
        chosen = [c for c in mine if c["mode"] == "clean"]
    elif ref["table"].startswith("accuracy (%) — "):
        mode = ref["table"][len("accuracy (%) — "):].removesuffix(" attacks")
        chosen = [c for c in mine if c["mode"] == mode and c["attack"] == ref["column"]]
    elif ref["table"].startswith("robust accuracy (%) — per-sample worst case") and ref["column"] == "robust":
        budgets = {c["budget"] for c in mine if c["mode"] != "clean"}
        budget = keys[2] if len(keys) > 2 else (budgets.pop() if len(budgets) == 1 else None)
        if budget is None:
            return None
        chosen = [c for c in mine if c["mode"] == "clean" or c["budget"] == budget]
    else:
        return None
    if not chosen or (ref["column"] != "robust" and len(chosen) != 1):
        return None
    index, correct = arrays(chosen[0])
    for c in chosen[1:]:
        i2, c2 = arrays(c)
        if not np.array_equal(i2, index):
            return None
        correct = correct & c2
    return index, correct


def seed_samples(summary_of, refs: list[dict], runs: list[str]):
    """Per reference, per seed, the per-sample ``(index, correct)`` on the test images every seed's
    run holds, and whether any run was cut to them; None when a seed stored no per-sample cell.
    The retrained seeds of an expensive run are judged on a smaller subset nested in seed 0's
    (``data.subset_seed`` draws nested subsets: 500 of seed 0's 2,000), so every seed is judged on
    the same images: the ones they all share. Subsets that are not nested are left whole."""
    got = [[per_sample(summary_of(dict(ref, summary=p)), ref) for p in runs] for ref in refs]
    if any(x is None for row in got for x in row):
        return None
    common = functools.reduce(np.intersect1d, [index for row in got for index, _ in row])
    sizes = {len(index) for row in got for index, _ in row}
    if sizes == {len(common)} or len(common) not in sizes:  # the same images, or subsets not nested:
        return got, False                                    # each seed judged on its own (bootstrapped apart)

    def restrict(index: np.ndarray, correct: np.ndarray):
        order = np.argsort(index, kind="stable")
        return common, correct[order[np.searchsorted(index, common, sorter=order)]]

    return [[restrict(*x) for x in row] for row in got], True


def rule_verdict(claim: dict, value, summary_of, runs: list[str], at_zero: bool = False):
    """The claim's verdict by the written rule of ``advx.evaluation.verdict``: {"kind": "value",
    "paper": 99.3}, {"kind": "gain", "sign": 1, "minus": REF, "paper": 22.9}, {"kind": "not
    comparable" | "not measured", "why": ...} (REF: a measured reference like ``measured``, the B
    of "A beats B"); the tolerance is ``verdict.tolerance`` (the paper's own spread, else 0; with
    ``at_zero``, 0); ``n`` names the image count of a table not over the test set. ``runs``: one
    stored run per training seed."""
    from advx.evaluation import verdict

    rule = claim.get("rule")
    if rule is None:
        return verdict.Judged("no rule")
    if rule["kind"] in (verdict.NOT_COMPARABLE, verdict.NOT_MEASURED):
        return verdict.Judged(rule["kind"], why=rule["why"])
    if value is None:
        return verdict.Judged(verdict.NOT_MEASURED, why="the stored run has no such cell")
    n = summary_of(claim["measured"]).get("sizes", {}).get("test")
    if not n:
        return verdict.Judged("no verdict", why="the stored run predates sizes in summary.json")
    if rule["kind"] == "gain" and not summary_of(rule["minus"]).get("sizes", {}).get("test"):
        return verdict.Judged("no verdict", why="the compared run predates sizes in summary.json")
    n = rule.get("n", n)  # a table over other images than the test set (noise sensitivity: seen images)
    tolerance = 0.0 if at_zero else verdict.tolerance(rule)
    paper = None if rule.get("paper") is None else float(rule["paper"])
    if len(runs) > 1:  # several training seeds: a two-level bootstrap over seeds and samples
        shared = seed_samples(summary_of, [claim["measured"], *([] if rule["kind"] == "value" else [rule["minus"]])],
                              runs)
        if shared is None:
            return verdict.Judged("no verdict", why="a seed's run stored no per-sample results for this cell")
        (a, *rest), cut = shared
        b = rest[0] if rest else None
        if cut:
            n = len(a[0][0])
        if b is not None and not all(np.array_equal(x[0], y[0]) for x, y in zip(a, b)):
            return verdict.Judged("no verdict", why="the two cells of a seed hold different test images")
        same = all(np.array_equal(x[0], a[0][0]) for x in a)  # every seed evaluated on the same images
        mean, lo, hi = verdict.seed_bootstrap([x[1] for x in a], None if b is None else [y[1] for y in b],
                                              same_images=same)
        if rule["kind"] == "value":  # never narrower than Wilson's over every seed's images together
            pooled = np.concatenate([x[1] for x in a])
            w_lo, w_hi = verdict.wilson(float(pooled.sum()), len(pooled))
            return verdict.judge_value(mean, int(n), paper, tolerance, interval=(min(lo, w_lo), max(hi, w_hi)))
        return verdict.judge_gain(mean, lo, hi, int(n), int(rule["sign"]), True, paper, tolerance)
    if rule["kind"] == "value":
        return verdict.judge_value(float(value), int(n), paper, tolerance)
    a, b = per_sample(summary_of(claim["measured"]), claim["measured"]), per_sample(summary_of(rule["minus"]),
                                                                                     rule["minus"])
    if a is not None and b is not None and np.array_equal(a[0], b[0]):
        d, lo, hi = verdict.paired_difference(a[1], b[1])
        return verdict.judge_gain(d, lo, hi, len(a[1]), int(rule["sign"]), True, paper, tolerance)
    other = lookup(summary_of(rule["minus"]), rule["minus"])
    n2 = summary_of(rule["minus"]).get("sizes", {}).get("test") or n
    d, lo, hi = verdict.unpaired_difference(float(value), int(n), float(other), int(n2))
    return verdict.judge_gain(d, lo, hi, int(n), int(rule["sign"]), False, paper, tolerance)


def render_combined(folder: Path) -> str:
    """One line per paper claim judged in several runs: every claims file under ``folder`` whose
    rows share a ``paper_claim`` id, each run's stored verdict, and the combined verdict by
    ``verdict.combine``."""
    from advx.evaluation.verdict import RunVerdict, combine

    found: dict[str, list] = {}
    for path in sorted(folder.glob("*/claims.json")):
        claims = json.loads(path.read_text())
        for c in claims["claims"]:
            if "paper_claim" in c:
                r = c.get("result") or {"verdict": (c.get("rule") or {}).get("kind", "no rule")}
                found.setdefault(c["paper_claim"], []).append(
                    (c, RunVerdict(path.parent.name, r["verdict"], max(1, len(r.get("seeds") or [])), r.get("n"))))
    lines = ["| paper claim | paper | verdict in each run | combined verdict (by rule) |", "| --- | --- | --- | --- |"]
    for key, rows in found.items():
        if len(rows) < 2:
            continue
        verdict, why = combine([j for _, j in rows])
        each = "; ".join(f"{j.run}: {j.verdict}" + (f" ({j.seeds} seeds, n = {j.n})" if j.seeds > 1 else
                                                    f" (n = {j.n})" if j.n else "") for _, j in rows)
        lines.append(f"| {key} | {rows[0][0]['paper']} | {each} | {verdict} ({why}) |")
    return "\n".join(lines) + "\n"


def readmes() -> list[Path]:
    return [ROOT / "README.md", *sorted(ROOT.glob("plugins/*/README.md"))]


def verdict_counts(verdicts: list[str]) -> str:
    """The line a README opens its claims with: how many claims got each verdict by the rule."""
    from advx.evaluation.verdict import VERDICTS

    counts = {v: verdicts.count(v) for v in dict.fromkeys([*VERDICTS, *verdicts]) if verdicts.count(v)}
    if not counts:
        return ("No claim here is judged by the written rule (`advx.evaluation.verdict`) yet: the verdicts below "
                "are a person's words, written when the run was made.\n")
    parts = " · ".join(f"{k} {v}" for k, v in counts.items())
    return (f"Verdicts by the written rule (`advx.evaluation.verdict`) over {len(verdicts)} claims: {parts}.\n")


def sync(check: bool) -> list[str]:
    stale = []
    for path in readmes():
        text = path.read_text()
        seen: dict = {}

        def repl(m: re.Match) -> str:
            return m.group(1) + render(ROOT / m.group(2), m.group(3)) + m.group(5)

        def repl_claims(m: re.Match) -> str:
            return m.group(1) + render_claims(ROOT / m.group(2), write=not check, seen=seen) + m.group(4)

        new = CLAIMS.sub(repl_claims, BLOCK.sub(repl, text))
        new = COMBINED.sub(lambda m: m.group(1) + render_combined(ROOT / m.group(2)) + m.group(4), new)
        new = COUNTS.sub(lambda m: m.group(1) + verdict_counts(seen.get("verdicts", [])) + m.group(3), new)
        if new != text or seen.get("stale"):
            stale.append(str(path.relative_to(ROOT)))
            if not check:
                path.write_text(new)
    return stale


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--check", action="store_true", help="exit 1 if a README block differs from its JSON")
    stale = sync(ap.parse_args().check)
    if stale and "--check" in sys.argv:
        print("stale generated tables in: " + ", ".join(stale))
        sys.exit(1)
    print("rewrote: " + ", ".join(stale) if stale else "every generated table matches its JSON")


if __name__ == "__main__":
    main()
