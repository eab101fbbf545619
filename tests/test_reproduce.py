"""`advx reproduce PAPER`: a paper's own configs, tried at tiny size on files the test writes."""

import json
from pathlib import Path

from click.testing import CliRunner

from advx.cli import cli
from advx.reproduce import EXAMPLES, PAPERS, tiny_overrides

from .test_data import make_mnist


def test_every_paper_names_configs_that_exist():
    for paper in PAPERS.values():
        for stem in paper.configs + paper.stand_ins:
            assert (EXAMPLES / f"{stem}.toml").is_file(), stem


def test_the_readme_plugin_table_lists_exactly_each_papers_configs_and_stand_ins():
    import re

    readme = (EXAMPLES.parent / "README.md").read_text()
    for key, paper in PAPERS.items():
        row = next(line for line in readme.splitlines() if line.startswith(f"| `plugins/{paper.plugin}` | {key}"))
        named = [Path(n).stem for n in re.findall(r"`(?:examples/)?([\w]+\.toml)`", row.split("|")[4])]
        assert named == list(paper.configs + paper.stand_ins), (key, named)
        assert ("CPU stand-ins" in row) == bool(paper.stand_ins)


def test_list_shows_every_paper_and_stand_ins_run_instead_of_the_paper_setting(tmp_path, monkeypatch):
    import advx
    from advx.errors import DatasetNotFoundError

    def no_data(path, sets):  # which configs would run, without running them
        raise DatasetNotFoundError(f"(test) {Path(path).name} not run")

    monkeypatch.setattr(advx, "load_experiment", no_data)
    res = CliRunner().invoke(cli, ["reproduce", "--list"])
    assert res.exit_code == 0
    for key, paper in PAPERS.items():
        assert f"{key} ({paper.plugin})" in res.output
        for stem in paper.configs + paper.stand_ins:
            assert f"examples/{stem}.toml" in res.output
    res = CliRunner().invoke(cli, ["reproduce", "004", "--stand-ins", "--tiny", "--out-dir", str(tmp_path / "out")])
    assert "2 CPU stand-in(s), tiny" in res.output and "(test) counteract_fmnist_table3.toml not run" in res.output
    assert "counteract_cifar10" not in res.output and res.exit_code == 2
    res = CliRunner().invoke(cli, ["reproduce", "004", "--tiny", "--out-dir", str(tmp_path / "out")])
    assert "its CPU stand-ins (counteract_fmnist, counteract_fmnist_table3) run with --stand-ins" in res.output
    res = CliRunner().invoke(cli, ["reproduce", "mixup", "--stand-ins"])
    assert res.exit_code == 2 and "has no CPU stand-in" in res.output
    res = CliRunner().invoke(cli, ["reproduce"])
    assert res.exit_code == 2 and "--list shows them" in res.output


def test_tiny_shrinks_every_model_the_config_trains():
    sets = tiny_overrides(EXAMPLES / "mixup_at_mnist.toml")
    assert sets[:2] == ["data.test_limit=16", "model.train.epochs=1"]
    assert {"train.2.epochs=1", "train.6.epochs=1"} <= set(sets)


def test_a_paper_runs_at_tiny_size_with_its_report_seed_by_seed_on_one_test_subset(tmp_path):
    import h5py
    import numpy as np

    make_mnist(tmp_path / "d" / "MNIST" / "raw", n=60)
    res = CliRunner().invoke(cli, ["reproduce", "mixup", "--tiny", "--seeds", "2", "--set", f"data.root={tmp_path / 'd'}",
                                   "--device", "cpu", "--out-dir", str(tmp_path / "out"), "--only", "mixup_table3_mnist"])
    assert res.exit_code == 0, res.output
    assert "paper 001: adversarial attack and defense based on data mixup (mixup); 1 config(s), tiny" in res.output
    assert "[2/2]" in res.output and "experiment.seed=1" in res.output and "mixup_at_mnist.toml" not in res.output
    summary = json.loads((tmp_path / "out" / "mixup_table3_mnist-tiny-seed1_report" / "summary.json").read_text())
    assert summary["command"].startswith("advx reproduce mixup --tiny --seeds 2 --set data.root=")  # what made the run
    assert summary["report_command"] == "advx reproduce mixup --tiny --seeds 2 --only mixup_table3_mnist"
    assert summary["sizes"]["test"] == 16
    assert summary["config"]["model"]["train"]["epochs"] == 1 and summary["tables"] and summary["seed"] == 1
    # self-describing: the training set's size, the machine, and where the time went
    assert 0 < summary["sizes"]["train"] <= 60 and "cores" in summary["machine"]
    seconds = summary["seconds"]
    assert seconds["training"] >= 0 and seconds["cells"] > 0  # three tiny models can train in under 0.05 s
    assert summary["models"] and all(m["seconds"] > 0 for m in summary["models"].values())  # each one timed
    assert abs(seconds["total"] - seconds["training"] - seconds["cells"]) <= 0.11  # each rounded to 0.1
    runs = [tmp_path / "out" / f"mixup_table3_mnist-tiny-seed{s}.h5" for s in (0, 1)]
    with h5py.File(runs[0], "r") as a, h5py.File(runs[1], "r") as b:
        assert np.array_equal(a["test/index"][()], b["test/index"][()])  # the same images judge both seeds
        assert a["models/base"].attrs["hash"] != b["models/base"].attrs["hash"]  # two trainings


def test_missing_data_is_one_line_per_config_and_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["reproduce", "004", "--tiny", "--set", f"data.root={tmp_path}",
                                   "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "skipped: cifar10: data_batch_1" in res.output and "data.download = true" in res.output
    assert "error: paper 004: no config could run" in res.output
    assert not (tmp_path / "out" / "counteract_cifar10-tiny.h5").exists()


def test_only_names_a_config_of_the_paper_or_is_one_line():
    res = CliRunner().invoke(cli, ["reproduce", "001", "--only", "batchout_mnist", "--plan"])
    assert res.exit_code == 2 and res.output.startswith("error: --only batchout_mnist: not a config of paper 001; "
                                                         "its configs are mixup_at_mnist, mixup_table3_mnist")
    res = CliRunner().invoke(cli, ["reproduce", "001", "--only", "mixup_table3_mnist", "--plan"])
    assert res.exit_code == 0 and "1 config(s)" in res.output and "mixup_at_mnist:" not in res.output


def test_an_unknown_paper_is_one_line():
    res = CliRunner().invoke(cli, ["reproduce", "007"])
    assert res.exit_code == 2 and res.output.startswith("error: unknown paper '007'; known: 000 (intelligent-mixup)")


def test_attack_passes_are_the_known_step_counts():
    import advx
    from advx.reproduce import attack_passes

    make = advx.create
    assert attack_passes(make("attack", "fgsm")) == 1
    assert attack_passes(make("attack", "pgd", steps=10, restarts=2)) == 20
    assert attack_passes(make("attack", "apgd-t", steps=100, targets=9)) == 900
    assert attack_passes(make("attack", "cw")) == 9 * 100
    assert attack_passes(make("attack", "square", queries=1000)) == 1000
    # APGD-CE, then APGD-T and FAB-T (two passes a step) on 9 targets, then Square's 5,000 queries
    assert attack_passes(make("attack", "autoattack")) == 100 + 3 * 100 * 9 + 5000


def test_the_cost_anchors_are_the_stored_gpu_measurements():
    from advx.reproduce import ANCHOR_PASSES_S, SMALL_NETWORK_PASSES_S

    gpu = EXAMPLES.parent / "benchmarks" / "results" / "gpu" / "final"
    row = json.loads((gpu / "attacks_gpu_fp32.json").read_text())["rows"][0]
    assert row["attack"] == "PGD-10" and json.loads((gpu / "attacks_gpu_fp32.json").read_text())["meta"]["model"] == "resnet18"
    assert round(row["ours_img_s"] * row["fwd_per_img"]) == ANCHOR_PASSES_S
    eot = json.loads((gpu / "eot_batching_gpu.json").read_text())
    one_draw = sorted(eot["seconds"]["1"])[1]  # the median of three
    assert round(4096 * eot["limit_passes"] / one_draw, -2) == SMALL_NETWORK_PASSES_S


def test_every_paper_config_resolves_at_full_size_and_the_plan_runs_nothing(tmp_path):
    """--plan resolves every config of every paper as written (not --tiny) and prints one command per
    seed with its cost; it writes nothing."""
    from advx.reproduce import plan

    for key, paper in PAPERS.items():
        lines: list[str] = []
        rows = plan(key, seeds=3, echo=lines.append)
        if paper.stand_ins:
            rows += plan(key, stand_ins=True, echo=lines.append)
        for row in rows:
            assert "why" in row or (row["cells"] > 0 and row["eval_passes"] > 0 and row["gpu_hours"] > 0), row
        estimated = [r for r in rows[: len(paper.configs)] if "why" not in r]
        assert sum(line.startswith("    seed ") for line in lines) == 3 * len(estimated) + len(rows) - len(paper.configs) - sum(
            "why" in r for r in rows[len(paper.configs):])
    res = CliRunner().invoke(cli, ["reproduce", "001", "--plan", "--seeds", "2", "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 0 and "experiment.seed=1" in res.output and "GPU-hours" in res.output, res.output
    assert not (tmp_path / "out").exists()
    res = CliRunner().invoke(cli, ["reproduce", "000", "--plan", "--stand-ins"])
    assert res.exit_code == 2 and "has no CPU stand-in" in res.output
