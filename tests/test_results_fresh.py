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


def test_a_run_is_stale_when_dirty_or_made_before_a_change_that_moves_runs_like_it():
    from .test_readme_tables import readme_tables as rt
    change = rt.result_changes()[0]
    clean = {"versions": {"advx commit": "0" * 40}, "created": "2099-01-01T00:00:00",
             "config": {"defense": [{"label": "d"}], "attack": [{"name": "pgd"}]}}
    assert rt.staleness(clean) == []
    assert rt.staleness({**clean, "versions": {"advx commit": "abc+dirty"}}) == ["made from a dirty tree (abc+dirty)"]
    before = {**clean, "created": "2026-01-01T00:00:00"}
    assert any(change["commit"] in w for w in rt.staleness(before))  # defended, made before the #47 changes
    assert rt.staleness({**before, "config": {"attack": [{"name": "pgd"}]}}) == []  # no defence: not moved
    square_l2 = {**before, "config": {"attack": [{"name": "square", "norm": "l2"}]}}
    assert any("2d25b8f" in w for w in rt.staleness(square_l2))
    assert rt.staleness({**clean, "versions": {}}) == ["its commit is not recorded"]
    assert rt.staleness({"created": "2026-01-01T00:00:00"}) == []  # hand-made (tests): judged on its numbers


def test_every_listed_result_change_is_a_commit_of_this_history_at_its_date():
    import subprocess

    from .test_readme_tables import readme_tables as rt
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: the commits cannot be looked up")
    for change in rt.result_changes():
        assert set(change) == {"commit", "date", "applies_to", "why"}, change
        rt._applies(change["applies_to"], {})  # a known kind
        found = subprocess.run(["git", "log", "-1", "--format=%aI", change["commit"]], cwd=ROOT, capture_output=True,
                               text=True)
        if found.returncode != 0 and "unknown revision" in found.stderr:
            pytest.skip("a shallow clone: the listed commits are not in it")
        assert found.stdout.strip().startswith(change["date"]), (change, found.stdout, found.stderr)


@pytest.mark.parametrize("claims", sorted(ROOT.glob("plugins/*/results/*/claims.json")),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_a_stale_run_backs_no_counted_verdict(claims):
    """Every claims row measured in a run that is dirty or older than a change that moves it reads
    'stale run', and every row that reads so names why (the check is by content: commit, date and
    config of the run, against benchmarks/result_changes.toml)."""
    from .test_readme_tables import readme_tables as rt
    data = json.loads(claims.read_text())
    for c in data["claims"]:
        if "result" not in c or c.get("measured") is None:
            continue
        runs = data.get("seeds", [data["summary"]]) if "summary" not in c["measured"] else [c["measured"]["summary"]]
        minus = (c.get("rule") or {}).get("minus")
        runs += [minus.get("summary", data["summary"])] if minus else []
        stale = any(rt.staleness(json.loads((ROOT / p).read_text())) for p in runs)
        unjudged = c["result"]["verdict"] in ("not measured", "not comparable", "no rule", "no verdict",
                                              "calibration target", "our addition")  # never counted anyway
        assert (c["result"]["verdict"] == rt.STALE) == (stale and not unjudged), (c["claim"], c["result"]["verdict"], runs)
