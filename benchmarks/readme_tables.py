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
claims file holds what a person writes (the claim, the paper's number, the setting, a note on
why); a claim with a ``rule`` also gets its 95 % interval and a verdict computed by the written
rule of ``advx.evaluation.verdict`` from the stored sizes; each measured value is a reference ``{"table": title prefix, "row": [first cells],
"column": name}`` into the summary the file names, looked up at render time, never typed.
"""

from __future__ import annotations

import argparse
import json
import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r'(<!-- table: (\S+) "([^"]*)" -->\n)(.*?)(<!-- /table -->)', re.S)
CLAIMS = re.compile(r'(<!-- claims: (\S+) -->\n)(.*?)(<!-- /claims -->)', re.S)


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


def render_claims(source: Path) -> str:
    """The claims table; a ``measured`` reference may name its own ``summary`` (another stored run
    of the same plugin, e.g. a baseline run separately), else the file's."""
    claims = json.loads(source.read_text())
    summaries = {claims["summary"]: json.loads((ROOT / claims["summary"]).read_text())}

    def summary_of(ref: dict) -> dict:
        path = ref.get("summary", claims["summary"])
        if path not in summaries:
            summaries[path] = json.loads((ROOT / path).read_text())
        return summaries[path]

    ruled = any("rule" in c for c in claims["claims"])
    head = ["claim", "paper", "measured", *(["95 % interval", "verdict by rule", "note"] if ruled else []),
            "setting", *([] if ruled else ["verdict"])]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(head)]
    for c in claims["claims"]:
        if c.get("measured") is None:
            measured, value = "not measured", None
        else:
            value = lookup(summary_of(c["measured"]), c["measured"])
            measured = f"{value:.2f}" if isinstance(value, float) else str(value)
        cells = [c["claim"], c["paper"], measured]
        if ruled:
            cells += [*rule_verdict(c, value, summary_of), c["verdict"], c["setting"]]
        else:
            cells += [c["setting"], c["verdict"]]
        lines.append("| " + " | ".join(str(v) for v in cells) + " |")
    return "\n".join(lines) + "\n"


def rule_verdict(claim: dict, value, summary_of) -> tuple[str, str]:
    """(interval, verdict) by the written rule of ``advx.evaluation.verdict`` for a claim with a
    ``rule``: {"kind": "value", "paper": 99.3} or {"kind": "direction", "sign": 1, "minus": REF}
    (REF: a measured reference like ``measured``, the B of "A beats B")."""
    from advx.evaluation import verdict

    rule = claim.get("rule")
    if rule is None or value is None:
        return "—", "no rule" if rule is None else "not measured"
    n = summary_of(claim["measured"]).get("sizes", {}).get("test")
    if not n:
        return "—", "no verdict: the stored run predates sizes in summary.json"
    if rule["kind"] == "value":
        return verdict.value_verdict(float(value), int(n), float(rule["paper"]))
    other = lookup(summary_of(rule["minus"]), rule["minus"])
    n2 = summary_of(rule["minus"]).get("sizes", {}).get("test") or n
    d, lo, hi = verdict.unpaired_difference(float(value), int(n), float(other), int(n2))
    return verdict.direction_verdict(d, lo, hi, int(rule["sign"]), paired=False)


def readmes() -> list[Path]:
    return [ROOT / "README.md", *sorted(ROOT.glob("plugins/*/README.md"))]


def sync(check: bool) -> list[str]:
    stale = []
    for path in readmes():
        text = path.read_text()

        def repl(m: re.Match) -> str:
            return m.group(1) + render(ROOT / m.group(2), m.group(3)) + m.group(5)

        def repl_claims(m: re.Match) -> str:
            return m.group(1) + render_claims(ROOT / m.group(2)) + m.group(4)

        new = CLAIMS.sub(repl_claims, BLOCK.sub(repl, text))
        if new != text:
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
