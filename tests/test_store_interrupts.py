"""The run file under interruption: SIGKILL at random points, SIGTERM and SIGINT, a disk that
fills mid-write, a merge killed half-way; each resumes to the numbers of an uninterrupted run
(split from test_store.py so the suite's two workers share these subprocess-heavy tests)."""

import json
import os
import signal
import subprocess
import sys
import time

import h5py
import numpy as np
import pytest

import advx
from click.testing import CliRunner
from advx.cli import cli
from advx.evaluation.store import repair_run
from advx.toml_text import dumps

from .test_store import PER_SAMPLE, _digest, run_exp


def test_sigkill_and_resume_gives_identical_results_without_recomputing(tmp_path, tiny_config):
    tiny_config["attack"].append({"name": "apgd", "eps": 0.1, "steps": 40, "label": "APGD"})
    tiny_config["evaluate"]["chunk_size"] = 20
    ref = tmp_path / "ref.h5"
    run_exp(tiny_config, ref, cache_dir=tmp_path / "refcache")
    cfg_path = tmp_path / "cfg.json"
    cfg_path.write_text(json.dumps(tiny_config))
    out = tmp_path / "killed.h5"
    script = ("import json, sys, advx; cfg = json.load(open(sys.argv[1])); "
              "advx.load_experiment(cfg).run(sys.argv[2])")
    env = {**os.environ, "ADVX_PROGRESS": "0"}
    killed_after_cells = None
    cache = tmp_path / "cache" / "models"
    for delay in (0.3, 0.8, 1.5, 2.5, 4.0, 7.0, 11.0):  # later points only on a loaded machine
        if out.exists():
            out.unlink()
        proc = subprocess.Popen([sys.executable, "-c", script, str(cfg_path), str(out)], env=env)
        deadline = time.time() + 120
        while not list(cache.glob("*.pt")) and proc.poll() is None and time.time() < deadline:
            time.sleep(0.05)  # wait for the model: the interesting part is the cells after it
        time.sleep(delay)
        if proc.poll() is not None:
            continue
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        if not out.exists():  # killed while still importing (a loaded machine): try a later point
            continue
        with h5py.File(out, "r") as f:
            cells = f.get("cells", {})
            done = {k: cells[k].attrs["started"] for k in cells if cells[k].attrs.get("status") == "done"}
            partial = [k for k in cells if cells[k].attrs.get("status") != "done"]
        if done and partial:
            killed_after_cells = (done, partial)
            break
    assert killed_after_cells is not None, "could not interrupt the run mid-way"
    done, _ = killed_after_cells
    run_exp(tiny_config, out)  # resume
    with h5py.File(out, "r") as f:
        for k, started in done.items():
            assert f["cells"][k].attrs["started"] == started, f"finished cell {k} was recomputed"
    a, b = _digest(ref), _digest(out)
    assert a.keys() == b.keys()
    for k in a:
        for n in PER_SAMPLE:
            np.testing.assert_array_equal(a[k][n], b[k][n], err_msg=f"{k}:{n}")


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_and_sigint_say_how_to_resume_and_lose_nothing(tmp_path, tiny_config, sig, code):
    """`advx run` stopped by a scheduler (SIGTERM) or Ctrl-C (SIGINT): one line, exit 143 / 130,
    the run file readable, and the same command resumes without recomputing a finished cell."""
    tiny_config["attack"].append({"name": "apgd", "eps": 0.1, "steps": 100, "label": "APGD"})  # runs on
    tiny_config["evaluate"]["chunk_size"] = 20  # well after the first finished cell, so the signal lands mid-run
    tiny_config["experiment"]["cache_dir"] = str(tmp_path / "cache")
    tiny_config["data"]["test_limit"] = 60  # three chunks per cell; the resume finishes APGD-100: keep it short
    tiny_config["model"]["train"]["epochs"] = 1
    cfg = tmp_path / "c.toml"
    cfg.write_text(dumps(tiny_config))
    out = tmp_path / "r.h5"
    cmd = [sys.executable, "-m", "advx", "run", str(cfg), "--out", str(out)]
    env = {**os.environ, "ADVX_PROGRESS": "0"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 180
    done = {}
    while time.time() < deadline and proc.poll() is None and not done:
        time.sleep(0.2)
        try:
            with h5py.File(out, "r", locking=False) as f:
                cells = f.get("cells", {})
                done = {k: cells[k].attrs["started"] for k in cells if cells[k].attrs.get("status") == "done"}
        except (OSError, KeyError):
            pass
    assert proc.poll() is None and done, "the run ended before it could be interrupted"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err
    assert err.strip().splitlines()[-1] == "interrupted; re-run the same command to resume" and "Traceback" not in err
    resumed = CliRunner().invoke(cli, cmd[3:])  # the same command, in this process: one start-up less
    assert resumed.exit_code == 0, resumed.output
    with h5py.File(out, "r") as f:
        for k, started in done.items():
            assert f["cells"][k].attrs["started"] == started, f"finished cell {k} was recomputed"
        assert all(g.attrs["status"] == "done" for g in f["cells"].values())


def test_a_write_error_is_one_line_and_the_rerun_repairs_and_resumes(tmp_path, tiny_config):
    """Disk full (simulated by a file-size limit): exit 2 with one line naming the file and the OS
    error, no crash; the same command then keeps the finished cells and recomputes the rest, giving
    the numbers of an uninterrupted run. `advx repair` does the same on demand."""
    import resource

    tiny_config["evaluate"].update(chunk_size=40, save_adversarials=True)
    tiny_config["experiment"]["cache_dir"] = str(tmp_path / "cache")
    tiny_config["data"]["test_limit"] = 80  # two chunks: one kept, one recomputed (five processes: keep each short)
    tiny_config["model"]["train"]["epochs"] = 1
    cfg = tmp_path / "c.toml"
    cfg.write_text(dumps(tiny_config))
    env = {**os.environ, "ADVX_PROGRESS": "0"}

    def advx_run(out, limit=None):
        def cap():
            resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        return subprocess.run([sys.executable, "-m", "advx", "run", str(cfg), "--out", str(out)], env=env,
                              capture_output=True, text=True, timeout=300, preexec_fn=cap if limit else None)

    run_exp(tiny_config, tmp_path / "ref.h5")  # in this process (one start-up less); fills the model cache
    limit = int((tmp_path / "ref.h5").stat().st_size * 0.6)
    out = tmp_path / "r.h5"
    failed = advx_run(out, limit)
    lines = failed.stderr.strip().splitlines()
    assert failed.returncode == 2 and len(lines) == 1, failed.stderr
    assert lines[0].startswith(f"error: writing the run file {out} failed (File too large)")
    out_damage = out.read_bytes()
    (tmp_path / "s.h5").write_bytes(out_damage)  # the same damage, for `advx repair` below
    resumed = advx_run(tmp_path / "r.h5")
    assert resumed.returncode == 0, resumed.stderr
    assert "was damaged; kept" in resumed.stderr
    assert [p.name for p in tmp_path.glob("r.h5.*")] == ["r.h5.damaged"]  # no .lock, .padded or .repaired left
    a, b = _digest(tmp_path / "ref.h5"), _digest(tmp_path / "r.h5")
    assert a.keys() == b.keys()
    for k in a:
        for n in PER_SAMPLE:
            np.testing.assert_array_equal(a[k][n], b[k][n], err_msg=f"{k}:{n}")
    repaired = CliRunner().invoke(cli, ["repair", str(tmp_path / "s.h5")])  # in this process
    assert repaired.exit_code == 0 and "kept" in repaired.stdout, repaired.output
    kept = int(repaired.stdout.split("kept ")[1].split()[0])
    with h5py.File(tmp_path / "s.h5", "r") as f:
        assert kept >= 1 and len(f["cells"]) == kept
        assert all(g.attrs["status"] == "done" for g in f["cells"].values())
    (tmp_path / "s.h5").write_bytes(out_damage)  # damaged again and repaired again: still one damaged copy
    repair_run(tmp_path / "s.h5")
    assert [p.name for p in tmp_path.glob("s.h5.*")] == ["s.h5.damaged"]


TRUNCATED_AT = (0.0005, 0.01, 0.05, 0.12, 0.25, 0.37, 0.5, 0.7, 0.9, 0.99)  # of the file's bytes


def test_a_run_file_cut_short_anywhere_is_repaired_or_refused_in_one_line(tmp_path, tiny_config):
    """A copy cut short (at ten points): repair keeps what reads or says in one line that nothing
    can; every command that meets it says what to do in one line; --overwrite always starts afresh;
    no temporary or damaged copies pile up."""
    from click.testing import CliRunner

    from advx.cli import cli
    from advx.errors import StoreError
    from advx.evaluation.store import RunStore
    from advx.evaluation.store.runstore import WRITING

    tiny_config["experiment"]["cache_dir"] = str(tmp_path / "cache")
    whole = run_exp(tiny_config, tmp_path / "whole.h5")
    data = (tmp_path / "whole.h5").read_bytes()
    for frac in TRUNCATED_AT:
        cut = tmp_path / f"cut{frac}.h5"
        cut.write_bytes(data[:int(len(data) * frac)])
        try:
            kept, dropped, backup = repair_run(cut)
        except StoreError as exc:
            assert "\n" not in str(exc) and "--overwrite" in str(exc), exc
            assert cut.read_bytes() == data[:int(len(data) * frac)]  # refused: the file is left as it was
        else:
            assert backup.exists() and kept + dropped >= 0
            with RunStore(cut, mode="r") as s:
                assert s.header()["config_hash"]
        with RunStore(cut, fresh=True) as s:  # what --overwrite opens: always a fresh, empty file
            assert not len(s.f) and set(s.f.attrs) == {WRITING}  # nothing but the open-for-writing mark
        assert sorted(p.name for p in tmp_path.glob(f"cut{frac}.h5*")) in ([cut.name], [cut.name, f"{cut.name}.damaged"])
    cut = tmp_path / "r.h5"
    cfg = tmp_path / "c.toml"
    cfg.write_text(dumps(tiny_config))
    env = {**os.environ, "ADVX_PROGRESS": "0"}
    for argv in (["repair", str(cut)], ["report", str(cut)], ["audit", str(cut)], ["run", str(cfg), "--out", str(cut)]):
        cut.write_bytes(data[:len(data) * 37 // 100])
        r = CliRunner().invoke(cli, argv)  # in-process (start-up is most of a subprocess); the run below is typed
        lines = r.output.strip().splitlines()
        assert r.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), (argv, r.output)
        assert "Traceback" not in r.output
    r = subprocess.run([sys.executable, "-m", "advx", "run", str(cfg), "--out", str(cut), "--overwrite"], env=env,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    a, b = _digest(tmp_path / "whole.h5"), _digest(cut)
    assert a.keys() == b.keys() and len(a) == len(whole.cells)
    for k in a:
        np.testing.assert_array_equal(a[k]["correct"], b[k]["correct"], err_msg=k)
    assert sorted(p.name for p in tmp_path.glob("r.h5*")) == ["r.h5"]


def test_sigkill_during_the_merge_loses_nothing(tmp_path, tiny_config):
    """`advx merge` killed at seeded random points, then run again: the numbers of one process."""
    import random
    import shutil as sh

    from advx.evaluation.experiment import merge_run

    tiny_config["experiment"]["cache_dir"] = str(tmp_path / "cache")
    tiny_config["data"]["test_limit"] = 60
    tiny_config["model"]["train"]["epochs"] = 1
    run_exp(tiny_config, tmp_path / "ref.h5")
    out = tmp_path / "m.h5"
    for rank in range(2):
        advx.load_experiment(tiny_config).run(out, shard=(rank, 2))
    shards = tmp_path / "m.h5.shards"
    sh.copytree(shards, tmp_path / "shards.bak")
    env = {**os.environ, "ADVX_PROGRESS": "0"}
    cmd = [sys.executable, "-m", "advx", "merge", str(out)]
    t0 = time.time()
    assert subprocess.run(cmd, env=env, capture_output=True, timeout=300).returncode == 0
    duration = time.time() - t0
    rng = random.Random(0)
    for _ in range(2):
        out.unlink()
        sh.rmtree(shards, ignore_errors=True)
        sh.copytree(tmp_path / "shards.bak", shards)
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(duration * rng.uniform(0.3, 0.95))
        proc.kill()
        proc.wait()
        if shards.exists():  # killed before the merge finished: merging again completes it
            merge_run(out)
        a, b = _digest(tmp_path / "ref.h5"), _digest(out)
        assert a.keys() == b.keys()
        for k in a:
            for n in PER_SAMPLE:
                np.testing.assert_array_equal(a[k][n], b[k][n], err_msg=f"{k}:{n}")
