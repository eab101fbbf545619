"""The CLI: every bad input gets one clear line and exit code 2; --debug shows the traceback."""

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from advx.cli import cli

ROOT = Path(__file__).resolve().parents[1]


def run(*args):
    return CliRunner().invoke(cli, list(args))


def write(tmp_path, text):
    p = tmp_path / "x.toml"
    p.write_text(text)
    return str(p)


GOOD = """
[experiment]
seed = 0
[data]
name = "digits"
test_limit = 40
[model]
name = "digits-cnn"
[model.train]
epochs = 1
[[attack]]
name = "fgsm"
eps = 0.1
"""


@pytest.mark.parametrize("text,needle", [
    ("[model\n", "TOML syntax error"),
    (GOOD.replace('name = "fgsm"', 'name = "fgsmm"'), "unknown attack 'fgsmm' at attack[0]; did you mean 'fgsm'?"),
    (GOOD.replace("eps = 0.1", "eps = -1"), "invalid parameters for 'fgsm'"),
    (GOOD.replace("eps = 0.1", "epz = 0.1"), "did you mean 'eps'?"),
    (GOOD.replace('name = "digits"', 'name = "mnist"\nroot = "/nonexistent"'), "train-images-idx3-ubyte[.gz] not found"),
    (GOOD.replace('name = "digits-cnn"', 'name = "digits-cn"'), "unknown model 'digits-cn' at model"),
])
def test_bad_input_exits_2_with_one_line(tmp_path, text, needle):
    res = run("run", write(tmp_path, text), "--out", str(tmp_path / "r.h5"))
    assert res.exit_code == 2, res.output
    assert needle in res.output
    assert "Traceback" not in res.output


def test_missing_file_and_unknown_kind(tmp_path):
    res = run("run", str(tmp_path / "missing.toml"))
    assert res.exit_code == 2 and "no such config file" in res.output
    res = run("list", "widgets")
    assert res.exit_code == 2 and "unknown component kind 'widgets'" in res.output
    res = run("describe", "attack", "nope")
    assert res.exit_code == 2 and "unknown attack 'nope'" in res.output
    res = run("report", str(tmp_path / "none.h5"))
    assert res.exit_code == 2 and "no such run file" in res.output


def test_debug_shows_the_traceback(tmp_path):
    res = run("--debug", "run", str(tmp_path / "missing.toml"))
    assert res.exit_code != 0 and res.exception is not None


def test_list_describe_plugins():
    out = run("list", "attack").output
    for name in ["apgd", "bim", "cw", "deepfool", "fgsm", "gaussian", "pgd"]:
        assert name in out
    assert "steps: int = 10" in run("describe", "attack", "pgd").output
    assert "advx-attacks" in run("plugins").output


def test_console_script_entry_point(tmp_path):
    res = subprocess.run([sys.executable, "-m", "advx.cli", "run", str(tmp_path / "missing.toml")],
                         capture_output=True, text=True)
    assert res.returncode == 2 and "error:" in res.stderr


def test_run_then_report_writes_png(tmp_path):
    cfg = write(tmp_path, GOOD)
    out = tmp_path / "r.h5"
    res = run("run", cfg, "--out", str(out), "--set", "model.train.epochs=2")
    assert res.exit_code == 0, res.output
    assert "accuracy (%)" in res.output and "fgsm" in res.output
    res = run("report", str(out), "--out", str(tmp_path / "rep"))
    assert res.exit_code == 0
    assert list((tmp_path / "rep").glob("*.png")) and (tmp_path / "rep" / "report.md").is_file()
    again = run("run", cfg, "--out", str(out))
    assert again.exit_code == 2 and "different config" in again.output
    suggested = again.output.split("keep both with --out ")[1].split(",")[0]  # the command it names works
    assert suggested.startswith(str(tmp_path / "r-")) and suggested.endswith(".h5")
    assert run("run", cfg, "--out", suggested).exit_code == 0
    assert run("run", cfg, "--out", str(out), "--overwrite").exit_code == 0


@pytest.mark.parametrize("out,needle", [
    ("{tmp}/afile/run.h5", "afile is a file, not a folder"),
    ("/proc/run.h5", "cannot write the run file /proc/run.h5"),
    ("/sys/advx-test/run.h5", "cannot create the folder /sys/advx-test"),
    ("{tmp}", "is a folder; give a file name for the run"),
])
def test_unwritable_out_is_one_line_before_anything_trains(tmp_path, out, needle):
    (tmp_path / "afile").write_text("x")
    res = run("run", write(tmp_path, GOOD), "--out", out.format(tmp=tmp_path))
    assert res.exit_code == 2 and needle in res.output and "Traceback" not in res.output, res.output
    assert len(res.output.strip().splitlines()) == 1 and not (tmp_path / "cache").exists()


def test_summary_json_names_the_command_that_made_the_run(tmp_path):
    """Not the `advx report` that read it back: that one is `report_command`."""
    import json

    cfg = write(tmp_path, GOOD)
    assert run("run", cfg, "--out", str(tmp_path / "r.h5")).exit_code == 0
    assert run("report", str(tmp_path / "r.h5"), "--out", str(tmp_path / "rep")).exit_code == 0
    s = json.loads((tmp_path / "rep" / "summary.json").read_text())
    assert s["command"] == f"advx run {cfg} --out {tmp_path / 'r.h5'}"
    assert s["report_command"] == f"advx report {tmp_path / 'r.h5'} --out {tmp_path / 'rep'}"
    import advx  # the Python API records the process's own command line, not the last CLI call's
    advx.load_experiment(cfg).run(tmp_path / "p.h5")
    assert advx.open_run(tmp_path / "p.h5").header["command"].startswith("python ")


def test_a_file_that_is_not_hdf5_is_replaced_by_overwrite(tmp_path):
    """A run file that is not HDF5 at all: the hint names --overwrite, which starts afresh."""
    (tmp_path / "r.h5").write_bytes(b"not hdf5")
    res = run("run", write(tmp_path, GOOD), "--out", str(tmp_path / "r.h5"))
    assert res.exit_code == 2 and "delete it or replace it with --overwrite" in res.output
    res = run("report", str(tmp_path / "r.h5"))
    assert res.exit_code == 2 and "not a valid HDF5 run file" in res.output and "delete it" not in res.output
    res = run("run", write(tmp_path, GOOD), "--out", str(tmp_path / "r.h5"), "--overwrite")
    assert res.exit_code == 0, res.output
    assert run("report", str(tmp_path / "r.h5")).exit_code == 0


def test_a_changed_config_never_dead_ends(tmp_path):
    """Without --out each config gets its own file (the output name plus a short config hash), the
    same command resumes it, and experiment.output links to the newest run."""
    cfg = write(tmp_path, GOOD.replace("seed = 0", f'seed = 0\noutput = "{tmp_path}/runs/q.h5"'))
    first = run("run", cfg)
    assert first.exit_code == 0, first.output
    files = sorted((tmp_path / "runs").glob("q-*.h5"))
    assert len(files) == 1 and (tmp_path / "runs" / "q.h5").resolve() == files[0].resolve()
    changed = run("run", cfg, "--set", "attack.0.eps=0.2")
    assert changed.exit_code == 0, changed.output
    files2 = sorted((tmp_path / "runs").glob("q-*.h5"))
    assert len(files2) == 2
    newest = next(f for f in files2 if f not in files)
    assert (tmp_path / "runs" / "q.h5").resolve() == newest.resolve() and f"results: {newest}" in changed.output
    again = run("run", cfg, "--set", "attack.0.eps=0.2")  # the same command resumes: nothing new
    assert again.exit_code == 0 and len(list((tmp_path / "runs").glob("q-*.h5"))) == 2
    report = run("report", str(tmp_path / "runs" / "q.h5"))
    assert report.exit_code == 0 and "fgsm(eps=0.2)" in report.output and "fgsm(eps=0.1)" not in report.output


def test_a_run_file_from_before_hashed_names_is_resumed(tmp_path):
    cfg = write(tmp_path, GOOD.replace("seed = 0", f'seed = 0\noutput = "{tmp_path}/old.h5"'))
    assert run("run", cfg, "--out", str(tmp_path / "old.h5")).exit_code == 0
    again = run("run", cfg)
    assert again.exit_code == 0 and f"results: {tmp_path / 'old.h5'}" in again.output
    assert not list(tmp_path.glob("old-*.h5"))
