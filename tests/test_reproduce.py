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


def test_a_paper_runs_at_tiny_size_with_its_report(tmp_path):
    make_mnist(tmp_path / "d" / "MNIST" / "raw", n=60)
    res = CliRunner().invoke(cli, ["reproduce", "mixup", "--tiny", "--set", f"data.root={tmp_path / 'd'}",
                                   "--device", "cpu", "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 0, res.output
    assert "paper 001: adversarial attack and defense based on data mixup (mixup); 1 config(s), tiny" in res.output
    summary = json.loads((tmp_path / "out" / "mixup_at_mnist-tiny_report" / "summary.json").read_text())
    assert summary["command"].startswith("advx reproduce mixup --tiny --set data.root=")  # what made the run
    assert summary["report_command"] == "advx reproduce mixup --tiny" and summary["sizes"]["test"] == 16
    assert summary["config"]["model"]["train"]["epochs"] == 1 and summary["tables"]
    # self-describing: the training set's size, the machine, and where the time went
    assert 0 < summary["sizes"]["train"] <= 60 and "cores" in summary["machine"]
    seconds = summary["seconds"]
    assert seconds["training"] > 0 and seconds["cells"] > 0
    assert abs(seconds["total"] - seconds["training"] - seconds["cells"]) <= 0.11  # each rounded to 0.1


def test_missing_data_is_one_line_per_config_and_exit_2(tmp_path):
    res = CliRunner().invoke(cli, ["reproduce", "004", "--tiny", "--set", f"data.root={tmp_path}",
                                   "--out-dir", str(tmp_path / "out")])
    assert res.exit_code == 2
    assert "skipped: cifar10: data_batch_1" in res.output and "data.download = true" in res.output
    assert "error: paper 004: no config could run" in res.output
    assert not (tmp_path / "out" / "counteract_cifar10-tiny.h5").exists()


def test_an_unknown_paper_is_one_line():
    res = CliRunner().invoke(cli, ["reproduce", "007"])
    assert res.exit_code == 2 and res.output.startswith("error: unknown paper '007'; known: 000 (intelligent-mixup)")
