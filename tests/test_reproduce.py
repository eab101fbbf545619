"""`advx reproduce PAPER`: a paper's own configs, tried at tiny size on files the test writes."""

import json

from click.testing import CliRunner

from advx.cli import cli
from advx.reproduce import EXAMPLES, PAPERS, tiny_overrides

from .test_data import make_mnist


def test_every_paper_names_configs_that_exist():
    for paper in PAPERS.values():
        for stem in paper.configs:
            assert (EXAMPLES / f"{stem}.toml").is_file(), stem


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
    assert summary["command"] == "advx reproduce mixup --tiny" and summary["sizes"]["test"] == 16
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
