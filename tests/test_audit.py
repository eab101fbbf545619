"""`advx audit`: each of the seven indicators passes on a sound run and fails on the defect it names."""

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
    "evaluate": {"modes": ["oblivious", "adaptive"], "metrics": ["accuracy", "worst-case"],
                 "randomized_attack": "none"},  # the EOT indicator must see guo attacked with eot 1
}


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    out = tmp_path_factory.mktemp("audit") / "r.h5"
    advx.load_experiment(CONFIG).run(out)
    return out


def by_name(indicators):
    return {i.name: i for i in indicators}


def test_a_run_gets_all_seven_indicators_and_fails_the_eot_rule(run_file):
    results = advx.open_run(run_file)
    found = by_name(audit(results))
    assert list(found) == ["silent", "incomplete", "unconstrained", "transfer beats adaptive",
                           "randomized without EOT", "AutoAttack's checks", "worst-case gap"]
    assert found["silent"].verdict == OK and found["incomplete"].verdict == OK
    assert found["unconstrained"].verdict == OK and any("DeepFool" in c for c in found["unconstrained"].cells)
    # every cell stores its own attack's result: an adaptive cell above its oblivious one (FGSM
    # without EOT against random crops may be) is named, and only such a cell
    trailing = {f"base/{d}/{a} (adaptive)" for d in ("none", "guo") for a in ("FGSM", "DeepFool")
                if (ad := results.get("base", d, a, "adaptive")) is not None and ad.cell.mode == "adaptive"
                and ad.accuracy > results.get("base", d, a, "oblivious").accuracy}
    assert set(found["transfer beats adaptive"].cells) == trailing
    assert found["transfer beats adaptive"].verdict == (FAIL if trailing else OK)
    eot = found["randomized without EOT"]
    assert eot.verdict == FAIL and eot.cells == ("base/guo",) and "eot 1" in eot.detail
    assert found["worst-case gap"].verdict in (OK, "note") and "worst case" in found["worst-case gap"].detail
    # logits, repeatable outputs (the crops' evaluation draws are keyed by the image), no ensemble
    assert found["AutoAttack's checks"].verdict == OK and not found["AutoAttack's checks"].cells


def test_the_command_prints_the_table_and_exits_1_on_a_failure(run_file, tmp_path):
    res = CliRunner().invoke(cli, ["audit", str(run_file)])
    assert res.exit_code == 1, res.output
    assert "| randomized without EOT | FAIL | base/guo |" in res.output
    assert "audit failed: " in res.output and "randomized without EOT" in res.output.splitlines()[-1]
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


def test_minimal_norm_attacks_are_reported_as_norms_from_the_stored_arrays(run_file):
    """DeepFool's table row (issue #35): success among the clean-correct samples with its Wilson
    interval, and the median/mean norms of the successful ones, recomputed here from the cells."""
    from advx.evaluation.report import all_tables
    from advx.evaluation.verdict import wilson

    res = advx.open_run(run_file)
    (table,) = res.minimal_norm_tables()
    assert any(t.title == table.title for t in all_tables(res))
    rows = {(r[1], r[3]): dict(zip(table.columns, r)) for r in table.rows}
    assert set(rows) == {("none", "oblivious"), ("guo", "oblivious"), ("guo", "adaptive")}  # undefended: one mode
    for (defense, mode), row in rows.items():
        attacked_cell, clean = res.get("base", defense, "DeepFool", mode), res.get("base", defense, "clean")
        assert np.array_equal(attacked_cell.arrays["index"], clean.arrays["index"])
        attacked = clean.arrays["correct"].astype(bool)
        won = attacked & ~attacked_cell.arrays["correct"].astype(bool)
        assert row["attacked"] == attacked.sum() and row["success"] == round(100 * won.sum() / attacked.sum(), 2)
        assert (row["95% low"], row["95% high"]) == tuple(round(v, 2) for v in wilson(won.sum(), attacked.sum()))
        assert won.sum() > 0 and row["median l2"] == round(float(np.median(attacked_cell.arrays["l2"][won])), 4)
        assert 0 < row["median linf"] <= row["median l2"]


def test_plots_carry_values_intervals_and_mark_cells_that_did_not_run():
    """Issue #35: every bar has its value and 95 % interval; a cell that did not run is written
    'not run', never drawn as a bar of 0."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advx.evaluation.report import draw_table
    from advx.evaluation.results import MetricTable
    from advx.evaluation.verdict import wilson

    t = MetricTable("accuracy (%) — adaptive", ["train", "defense", "clean", "PGD", "Square"],
                    [["base", "none", 90.0, 40.0, 55.0], ["base", "guo", 80.0, 60.0, None]], plot="bar")
    fig, ax = plt.subplots()
    draw_table(ax, t, n=200)
    heights = sorted(round(p.get_height(), 2) for p in ax.patches)
    assert heights == [40.0, 55.0, 60.0, 80.0, 90.0]  # five bars: the missing Square cell is not a 0 bar
    assert [x.get_text() for x in ax.texts].count("not run") == 1
    labels = {x.get_text() for x in ax.texts}
    assert {"40.0", "55.0", "60.0", "80.0", "90.0"} <= labels
    low, high = wilson(0.4 * 200, 200)
    segments = [seg for c in ax.containers if hasattr(c, "errorbar") and c.errorbar is not None
                for seg in c.errorbar.lines[2][0].get_segments()]
    assert any(abs(s[0][1] - low) < 1e-6 and abs(s[1][1] - high) < 1e-6 for s in segments)
    plt.close(fig)


def test_bars_at_0_and_100_percent_draw_over_2000_samples():
    """Wilson's lower end at 0 of 2,000 is 1e-17, not 0: the error bar must not come out negative
    (it did, and crashed the report of a finished run)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advx.evaluation.report import draw_table
    from advx.evaluation.results import MetricTable

    t = MetricTable("accuracy (%) — oblivious", ["train", "defense", "clean", "PGD"],
                    [["base", "none", 100.0, 0.0], ["mixup", "none", 99.05, 0.05]], plot="bar")
    fig, ax = plt.subplots()
    draw_table(ax, t, n=2000)
    assert sorted(round(p.get_height(), 2) for p in ax.patches) == [0.0, 0.05, 99.05, 100.0]
    plt.close(fig)


def test_many_bars_keep_their_values_readable_and_their_colours_distinct():
    """With twelve bars per group (a worst-case table over two budgets) each value stands upright
    above its error bar, no two rows share a colour, and the legend sits beside the axes."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from advx.evaluation.report import draw_table
    from advx.evaluation.results import MetricTable
    from advx.evaluation.verdict import wilson

    rows = [[f"m{j}", "none", 80.0 + j, 10.0 + 5 * j] for j in range(12)]
    t = MetricTable("robust accuracy (%) — worst case", ["train", "defense", "clean", "robust"], rows, plot="bar")
    fig, ax = plt.subplots()
    draw_table(ax, t, n=2000)
    values = [x for x in ax.texts if x.get_text() != "not run"]
    assert len(values) == 24 and all(x.get_rotation() == 90 for x in values)
    for x in values:
        v = float(x.get_text())
        assert x.xy[1] >= wilson(v / 100 * 2000, 2000)[1] - 1e-9  # above the interval's upper end
    colours = {tuple(c.patches[0].get_facecolor()) for c in ax.containers if hasattr(c, "patches")}
    assert len(colours) == 12
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().x0 > ax.get_window_extent().x1 - 1
    plt.close(fig)


def test_the_report_of_a_link_is_named_after_the_run_it_points_to(run_file, tmp_path):
    """runs/quickstart.h5 links to the newest run: its report goes to <that run>_report, so the
    reports of two runs never overwrite each other."""
    run = tmp_path / "quickstart-abc123.h5"
    run.write_bytes(run_file.read_bytes())
    link = tmp_path / "quickstart.h5"
    link.symlink_to(run.name)
    res = CliRunner().invoke(cli, ["report", str(link)])
    assert res.exit_code == 0, res.output
    assert (tmp_path / "quickstart-abc123_report" / "report.md").is_file()
    assert not (tmp_path / "quickstart_report").exists()
    pngs = sorted((tmp_path / "quickstart-abc123_report").glob("*.png"))
    assert pngs and all(p.stat().st_size > 1000 for p in pngs)


def test_a_report_that_cannot_be_written_prints_the_tables_then_one_line(run_file, tmp_path):
    """``advx report`` on a run whose report folder cannot be written (a read-only folder, a full disk;
    here a path under a regular file) printed the tables, then a traceback (issue #46)."""
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    res = CliRunner().invoke(cli, ["report", str(run_file), "--out", str(blocker / "report")])
    assert res.exit_code == 2, res.output
    assert "robust accuracy (%)" in res.stdout and "Traceback" not in res.output
    errors = [line for line in res.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "the report files could not be written" in errors[0] and "--out" in errors[0]
