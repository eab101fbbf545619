"""`advx audit`: each of the six indicators passes on a sound run and fails on the defect it names."""

import copy

import h5py
import numpy as np
import pytest
from click.testing import CliRunner

import advx
from advx.cli import cli
from advx.evaluation.audit import FAIL, NA, OK, audit

CONFIG = {
    "experiment": {"name": "audit", "seed": 0},
    "data": {"name": "digits", "test_limit": 40},
    "model": {"name": "digits-cnn", "train": {"epochs": 2, "batch_size": 64, "lr": 2e-3}},
    # randomized, and attacked adaptively with eot 1: the indicator this run must fail
    "defense": [{"label": "guo", "chain": [{"name": "crop-rescale", "min_scale": 0.75, "max_scale": 1.0}],
                 "repeats": 2, "eot": 1}],
    "attack": [{"name": "fgsm", "eps": 0.1, "label": "FGSM"},
               {"name": "deepfool", "steps": 10, "label": "DeepFool"}],
    "evaluate": {"modes": ["oblivious", "adaptive"], "metrics": ["accuracy", "worst-case"]},
}


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "r.h5"
    advx.load_experiment(CONFIG).run(out)
    return out


def by_name(indicators):
    return {i.name: i for i in indicators}


def test_a_run_gets_all_six_indicators_and_fails_only_the_eot_rule(run_file):
    found = by_name(audit(advx.open_run(run_file)))
    assert list(found) == ["silent", "incomplete", "unconstrained", "transfer beats adaptive",
                           "randomized without EOT", "worst-case gap"]
    assert found["silent"].verdict == OK and found["incomplete"].verdict == OK
    assert found["unconstrained"].verdict == OK and any("DeepFool" in c for c in found["unconstrained"].cells)
    assert found["transfer beats adaptive"].verdict == OK  # adaptive cells keep the oblivious adversarial too
    eot = found["randomized without EOT"]
    assert eot.verdict == FAIL and eot.cells == ("base/guo",) and "eot 1" in eot.detail
    assert found["worst-case gap"].verdict in (OK, "note") and "worst case" in found["worst-case gap"].detail


def test_the_command_prints_the_table_and_exits_1_on_a_failure(run_file, tmp_path):
    res = CliRunner().invoke(cli, ["audit", str(run_file)])
    assert res.exit_code == 1, res.output
    assert "| randomized without EOT | FAIL | base/guo |" in res.output
    assert "audit failed: randomized without EOT" in res.output
    res = CliRunner().invoke(cli, ["audit", str(tmp_path / "missing.h5")])
    assert res.exit_code == 2 and "no such run file" in res.output


def mutated(run_file, tmp_path, edit):
    """A copy of the run file with one defect written into it."""
    out = tmp_path / "m.h5"
    out.write_bytes(run_file.read_bytes())
    with h5py.File(out, "a") as f:
        edit(f)
    return advx.open_run(out)


def cell(f, *needles):
    return next(f["cells"][k] for k in f["cells"] if all(n in k for n in needles))


def test_silent_failures_are_caught(run_file, tmp_path):
    def nan_loss(f):
        g = cell(f, "FGSM", "guo", "adaptive")
        loss = g["loss"][...]
        loss[3] = np.nan
        del g["loss"]
        g["loss"] = loss

    found = by_name(audit(mutated(run_file, tmp_path, nan_loss)))["silent"]
    assert found.verdict == FAIL and "1 non-finite loss" in found.detail

    def unmoved(f):  # an attack that handed back its inputs: no sample moved
        g = cell(f, "FGSM", "none")
        for k in ("linf", "l2"):
            v = np.zeros_like(g[k][...])
            del g[k]
            g[k] = v

    found = by_name(audit(mutated(run_file, tmp_path, unmoved)))["silent"]
    assert found.verdict == FAIL and "moved none of the" in found.detail


def test_unfinished_and_adaptive_below_oblivious_fail(run_file, tmp_path):
    def half_done(f):
        cell(f, "DeepFool", "guo").attrs["status"] = "running"

    assert by_name(audit(mutated(run_file, tmp_path, half_done)))["incomplete"].verdict == FAIL

    def weak_adaptive(f):  # the adaptive cell leaves robust what the oblivious one broke
        obl = cell(f, "FGSM", "guo", "oblivious")
        ada = cell(f, "FGSM", "guo", "adaptive")
        v = np.ones_like(ada["correct"][...])
        del ada["correct"]
        ada["correct"] = v
        assert obl["correct"][...].mean() < 1

    found = by_name(audit(mutated(run_file, tmp_path, weak_adaptive)))["transfer beats adaptive"]
    assert found.verdict == FAIL and "McNemar z" in found.detail


def test_eot_and_budgets_read_from_the_cells(run_file, tmp_path):
    def with_eot(f):
        for k in f["cells"]:
            f["cells"][k].attrs["eot"] = 4

    assert by_name(audit(mutated(run_file, tmp_path, with_eot)))["randomized without EOT"].verdict == OK

    def old_file(f):  # written before budgets were recorded: minimal-norm cells cannot be told apart
        for k in f["cells"]:
            f["cells"][k].attrs.pop("budget", None)

    assert by_name(audit(mutated(run_file, tmp_path, old_file)))["unconstrained"].verdict == FAIL


def test_indicators_that_do_not_apply_say_so(run_file):
    res = copy.deepcopy(advx.open_run(run_file))
    res.cells = [c for c in res.cells if c.cell.mode == "clean"]
    found = by_name(audit(res))
    assert found["unconstrained"].verdict == NA and found["transfer beats adaptive"].verdict == NA
