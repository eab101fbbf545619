"""Nothing stale under plugins/*/results (issue #35): every stored run was made by a command of
benchmarks/paper_runs_cpu.sh, and its folder holds exactly the files that command's report wrote
(its tables as the summary lists them, the summary, the per-sample file) plus the claims file a
person writes. Folders without a summary hold only files the script names."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from advx.evaluation.report import PER_SAMPLE, TABLE_FILE, _slug

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = (ROOT / "benchmarks" / "paper_runs_cpu.sh").read_text()
COMMANDS = [" ".join(c.split()) for c in re.sub(r"\\\n\s*", " ", SCRIPT).splitlines() if c.startswith(("advx", "python"))]
RUNS = sorted(p.parent for p in ROOT.glob("plugins/*/results/*/summary.json"))
OTHER = sorted(p for p in ROOT.glob("plugins/*/results/*") if p.is_dir() and p not in RUNS)


def expected_files(summary: dict) -> set[str]:
    names = {"report.md", "summary.json", "claims.json"} | ({PER_SAMPLE} if summary.get("per_sample") else set())
    for i, t in enumerate(summary["tables"]):
        names.add(f"{i:02d}_{_slug(t['title'])}.csv")
        if t.get("plot"):
            names.add(f"{i:02d}_{_slug(t['title'])}.png")
    return names


@pytest.mark.parametrize("run", RUNS, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_stored_run_holds_what_its_listed_command_wrote(run):
    summary = json.loads((run / "summary.json").read_text())
    assert " ".join(summary["command"].split()) in COMMANDS, "its command is not in benchmarks/paper_runs_cpu.sh"
    present = {p.name for p in run.iterdir()}
    tables = {n for n in present if TABLE_FILE.match(n)}
    assert tables <= expected_files(summary), f"not written by the stored run: {sorted(tables - expected_files(summary))}"
    assert present <= expected_files(summary), f"unexpected files: {sorted(present - expected_files(summary))}"
    assert expected_files(summary) - {"claims.json"} <= present, "a table of the summary has no file"


@pytest.mark.parametrize("folder", OTHER, ids=lambda p: str(p.relative_to(ROOT)))
def test_a_results_folder_without_a_summary_holds_only_what_the_script_names(folder):
    for path in folder.iterdir():
        assert str(path.relative_to(ROOT)) in SCRIPT, f"{path.name}: no command of paper_runs_cpu.sh writes or uses it"


def test_write_report_removes_the_tables_an_earlier_report_left(tmp_path):
    import advx
    from advx.evaluation.report import write_report

    from .test_audit import CONFIG

    res = advx.load_experiment({**CONFIG, "attack": CONFIG["attack"][:1], "defense": [],
                                "evaluate": {"modes": ["oblivious"]}}).run(tmp_path / "r.h5")
    (tmp_path / "rep").mkdir()
    (tmp_path / "rep" / "07_a_table_of_an_older_run.csv").write_text("x\n")
    (tmp_path / "rep" / "notes.txt").write_text("mine\n")
    write_report(res, tmp_path / "rep")
    names = {p.name for p in (tmp_path / "rep").iterdir()}
    assert "07_a_table_of_an_older_run.csv" not in names and "notes.txt" in names
    assert names - {"notes.txt"} == expected_files(json.loads((tmp_path / "rep" / "summary.json").read_text())) - {
        "claims.json"}
