"""Measured tables in the READMEs are generated from stored JSON and must not drift from it."""

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("readme_tables", ROOT / "benchmarks" / "readme_tables.py")
readme_tables = importlib.util.module_from_spec(spec)
spec.loader.exec_module(readme_tables)

BLOCKS = [(path, m) for path in readme_tables.readmes() for m in readme_tables.BLOCK.finditer(path.read_text())]


def test_there_are_generated_tables():
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("path,block", BLOCKS, ids=[f"{p.parent.name}:{m.group(3)}" for p, m in BLOCKS])
def test_each_generated_table_equals_its_stored_json(path, block):
    source = ROOT / block.group(2)
    assert source.is_file(), f"{path}: table source {source} is not committed"
    data = json.loads(source.read_text())
    assert data.get("command") or data.get("meta", {}).get("command"), f"{source} does not record its command"
    assert block.group(4) == readme_tables.render(source, block.group(3)), \
        f"{path}: the table from {source} was edited by hand or is stale; run python benchmarks/readme_tables.py"


def test_render_formats_every_row_from_the_json(tmp_path):
    src = tmp_path / "s.json"
    src.write_text(json.dumps({"command": "x", "tables": [
        {"title": "robust accuracy (%) — x", "columns": ["train", "acc"], "rows": [["base", 12.345], ["ft", None]]}]}))
    assert readme_tables.render(src, "robust") == "| train | acc |\n| --- | --- |\n| base | 12.3 |\n| ft | — |\n"


CLAIMS = [(path, m) for path in readme_tables.readmes() for m in readme_tables.CLAIMS.finditer(path.read_text())]


@pytest.mark.parametrize("path,block", CLAIMS, ids=[p.parent.name for p, _ in CLAIMS])
def test_each_claims_table_reads_its_measured_values_from_the_stored_summary(path, block):
    source = ROOT / block.group(2)
    claims = json.loads(source.read_text())
    assert claims.get("command") and (ROOT / claims["summary"]).is_file()
    for c in claims["claims"]:
        if "rule" in c:  # the verdict is the rule's, stored under result by readme_tables
            assert c["rule"]["kind"] in ("value", "gain", "not comparable", "not measured"), c
            assert c.get("measured") is not None or c["rule"]["kind"] in ("not measured", "not comparable"), c
            assert c["rule"]["kind"] not in ("not measured", "not comparable") or c["rule"]["why"], c
        else:  # a person's verdict: never empty, and a row with nothing measured says why
            assert c["verdict"], c
            assert c.get("measured") is not None or "not measured" in c["verdict"], f"{c['claim']}: say why"
    seen = {}
    assert block.group(3) == readme_tables.render_claims(source, seen=seen), \
        f"{path}: the claims table from {source} is stale; run python benchmarks/readme_tables.py"
    assert not seen.get("stale"), f"{source}: a stored result no longer follows from the run"


def test_claims_look_up_the_measured_cell(tmp_path, monkeypatch):
    monkeypatch.setattr(readme_tables, "ROOT", tmp_path)
    (tmp_path / "s.json").write_text(json.dumps({"tables": [
        {"title": "accuracy (%) — oblivious", "columns": ["train", "defense", "PGD"],
         "rows": [["base", "none", 3.0], ["GN05", "none", 21.456]]}]}))
    (tmp_path / "c.json").write_text(json.dumps({"summary": "s.json", "command": "x", "claims": [
        {"claim": "GN05 PGD", "paper": "21.51", "measured": {"table": "accuracy", "row": ["GN05", "none"],
                                                             "column": "PGD"}, "setting": "s", "verdict": "ok"},
        {"claim": "CIFAR", "paper": "61.6", "measured": None, "setting": "c", "verdict": "not measured: no data"},
        {"claim": "other run", "paper": "1", "measured": {"summary": "t.json", "table": "accuracy", "row": ["drn"],
                                                          "column": "PGD"}, "setting": "t", "verdict": "ok"}]}))
    (tmp_path / "t.json").write_text(json.dumps({"tables": [
        {"title": "accuracy (%) — oblivious", "columns": ["train", "PGD"], "rows": [["drn", 7.125]]}]}))
    assert readme_tables.render_claims(tmp_path / "c.json").splitlines()[2:] == [
        "| GN05 PGD | 21.51 | 21.46 | s | ok |", "| CIFAR | 61.6 | not measured | c | not measured: no data |",
        "| other run | 1 | 7.12 | t | ok |"]


def script_commands() -> list[str]:
    """The commands of benchmarks/paper_runs_cpu.sh, continuation lines joined, spaces collapsed."""
    text = (ROOT / "benchmarks" / "paper_runs_cpu.sh").read_text().replace("\\\n", " ")
    return [" ".join(line.split()) for line in text.splitlines() if line.strip() and not line.startswith("#")]


def test_paper_runs_script_lists_exactly_the_commands_of_the_stored_runs():
    """Every stored run's summary names the command that made it, and that command is in
    benchmarks/paper_runs_cpu.sh; every advx run there that writes a report has its stored run."""
    commands = script_commands()
    summaries = sorted(ROOT.glob("plugins/*/results/*/summary.json"))
    assert summaries
    for path in summaries:
        command = " ".join(json.loads(path.read_text())["command"].split())
        assert command in commands, f"{path.relative_to(ROOT)}: {command!r} is not in paper_runs_cpu.sh"
    for command in commands:
        if command.startswith("advx run") and "--report-dir" in command:
            report_dir = command.split("--report-dir")[1].split()[0]
            assert (ROOT / report_dir / "summary.json").is_file(), f"{command!r}: nothing stored in {report_dir}"


def test_every_stored_run_describes_itself():
    """Issue #35: a stored summary carries what a reader needs to redo and recheck it: the resolved
    config (epochs included), train and test sizes, seed, commit, versions, machine, command, wall
    time, and the per-sample results beside it."""
    for path in sorted(ROOT.glob("plugins/*/results/*/summary.json")):
        s = json.loads(path.read_text())
        where = path.relative_to(ROOT)
        assert isinstance(s.get("config"), dict) and s["config"], where
        assert s["sizes"].get("train", 0) > 0 and s["sizes"].get("test", 0) > 0, where
        assert isinstance(s.get("seed"), int), where
        assert s["versions"].get("advx commit") and s["versions"].get("torch"), where
        assert s.get("machine") and s.get("command"), where
        assert s["seconds"]["total"] >= s["seconds"]["cells"] > 0, where
        assert (path.parent / s["per_sample"]).is_file(), where


def test_the_quickstart_comment_quotes_its_stored_timing():
    """The quickstart's promise (under a minute) is quoted from the stored run, never typed."""
    import re

    stored = json.loads((ROOT / "benchmarks" / "results" / "quickstart.json").read_text())
    comment = re.search(r"print the table\. (\d+) s on", (ROOT / "examples" / "quickstart.toml").read_text())
    assert comment and int(comment.group(1)) == round(stored["wall_s"])
    assert stored["wall_s"] < 60 and stored["lock_files_left"] == []


def run_commands() -> list[list[str]]:
    """The `advx run` commands of benchmarks/paper_runs_cpu.sh, split as the shell would."""
    import shlex

    return [shlex.split(c) for c in script_commands() if c.startswith("advx run")]


def test_every_paper_run_command_resolves_its_components():
    """A typo in a --set of a paper run would surface only hours into a session (a recipe's
    attack parameters are checked when its training starts): each command's config, overrides
    and components must resolve, as `advx run` does before it trains anything."""
    import advx

    commands = run_commands()
    assert commands
    for argv in commands:
        sets = [argv[i + 1] for i, a in enumerate(argv) if a == "--set"]
        resolved = advx.load_experiment(ROOT / argv[2], sets).resolve()
        assert resolved["attacks"], argv


def test_a_mistyped_recipe_parameter_fails_the_check():
    import advx
    from advx.errors import ComponentParameterError

    with pytest.raises(ComponentParameterError, match="'epz'; did you mean 'eps'"):
        advx.load_experiment(ROOT / "examples" / "fixer_fmnist.toml", ["train.0.augment.0.params.epz=16/255"]).resolve()
