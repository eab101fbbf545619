"""A corpus of malformed configs, generated from the config schema (every field given a value of
the wrong type) and written by hand (values out of their domain, broken structure, bad component
parameters): each must exit 2 with one line and no traceback, before any model trains."""

from __future__ import annotations

import copy
import typing

import attrs
import pytest
from click.testing import CliRunner

from advx.cli import cli
from advx.config import DataSettings, EvaluateSettings, ExperimentSettings, TrainSettings

from advx.toml_text import dumps

BASE = {
    "experiment": {"name": "corpus", "seed": 0},
    "data": {"name": "digits", "test_limit": 40},
    "model": {"name": "digits-cnn", "train": {"epochs": 1}},
    "attack": [{"name": "fgsm", "eps": 0.1}],
    "evaluate": {"modes": ["oblivious"]},
}
SECTIONS = [("experiment", ExperimentSettings), ("data", DataSettings), ("model.train", TrainSettings),
            ("evaluate", EvaluateSettings)]
SKIP = {"augment", "metrics", "dataset"}  # component lists and the dataset itself: written by hand below


def _wrong_values(tp) -> list:
    """Values no reading of type ``tp`` accepts."""
    origin = typing.get_origin(tp)
    args = [a for a in typing.get_args(tp) if a is not type(None)]
    if origin in (typing.Union, getattr(__import__("types"), "UnionType")):
        allowed = set()
        for a in args:
            allowed |= {repr(v) for v in _wrong_values(a)}
        return [v for v in ({"a": 1}, [[1]]) if all(repr(v) in {repr(w) for w in _wrong_values(a)} for a in args)]
    if origin is typing.Literal:
        return ["no-such-choice", 7]
    if origin in (tuple, list):
        return [{"a": 1}, [{"a": 1}]]
    if tp is bool:
        return ["yes", 2, [True]]
    if tp is int:
        return ["ten", 1.5, [1], {"a": 1}]
    if tp is float:
        return ["fast", [0.1], {"a": 1}]
    if tp is str:
        return [5, ["x"], {"a": 1}]
    return [{"a": 1}]


def schema_cases():
    for section, cls in SECTIONS:
        attrs.resolve_types(cls)
        for f in attrs.fields(cls):
            if f.name in SKIP:
                continue
            for bad in _wrong_values(f.type):
                raw = copy.deepcopy(BASE)
                node = raw
                for part in section.split("."):
                    node = node.setdefault(part, {})
                node[f.name] = bad
                yield pytest.param(raw, f"{section}.{f.name}", id=f"{section}.{f.name}={bad!r}")


def _with(path, value):
    raw = copy.deepcopy(BASE)
    node = raw
    parts = path.split(".")
    for part in parts[:-1]:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(parts[-1])] = value
    else:
        node[parts[-1]] = value
    return raw


def _without(section):
    raw = copy.deepcopy(BASE)
    del raw[section]
    return raw


HAND = [  # (raw config, a fragment the one-line message must contain)
    (_with("model.train.epochs", 0), "model.train.epochs"),
    (_with("model.train.epochs", -1), "model.train.epochs"),
    (_with("model.train.batch_size", 0), "batch_size"),
    (_with("model.train.lr", 0.0), "model.train.lr"),
    (_with("model.train.lr", -0.1), "model.train.lr"),
    (_with("model.train.lr", float("inf")), "model.train.lr"),
    (_with("model.train.momentum", -1.0), "momentum"),
    (_with("model.train.schedule", "multistep"), "milestones"),
    (_with("model.train.init", "nobody"), "model.train.init"),
    (_with("data.splits", 0), "data.splits"),
    (_with("data.train_fraction", 1.5), "data.train_fraction"),
    (_with("data.train_fraction", float("nan")), "data.train_fraction"),
    (_with("data.val_fraction", -0.1), "data.val_fraction"),
    (_with("data.test_limit", 0), "data.test_limit"),
    (_with("data.name", "no-such-data"), "unknown dataset"),
    (_with("data.unknown_key", 1), "unknown"),
    (_with("data.dataset", {"a": 1}), "no parameter 'dataset'"),
    (_with("evaluate.chunk_size", 0), "evaluate.chunk_size"),
    (_with("evaluate.eot", 0), "evaluate.eot"),
    (_with("evaluate.modes", []), "evaluate.modes"),
    (_with("evaluate.modes", "oblivious"), "evaluate.modes"),
    (_with("evaluate.modes", ["sideways"]), "evaluate.modes"),
    (_with("evaluate.modes", ["transfer"]), "transfer_from"),
    (_with("evaluate.batch_size", 0), "batch_size"),
    (_with("evaluate.batch_size", "huge"), "batch_size"),
    (_with("evaluate.metrics", ["no-such-metric"]), "no-such-metric"),
    (_with("evaluate.bogus", True), "evaluate.bogus"),
    (_with("experiment.bogus", True), "experiment.bogus"),
    (_with("experiment.device", "tpu"), "experiment.device"),
    (_with("attack.0.eps", -1), "fgsm"),
    (_with("attack.0.eps", "big"), "attack[0].eps"),
    (_with("attack.0.name", "no-such-attack"), "unknown attack"),
    (_with("attack.0.epz", 0.1), "did you mean 'eps'?"),
    (_with("attack.0", {"eps": 0.1}), "attack[0]"),
    (_with("attack.0", "fgsm-string-not-table"), "attack"),
    (_with("attack.0.sweep", {"eps": []}), "sweep"),
    (_with("attack.0.sweep", {"eps": 0.1}), "sweep"),
    (_with("attack.0.sweep", {"eps": [0.1], "steps": [1]}), "sweep"),
    (_with("attack.0.defenses", []), "defenses"),
    (_with("attack.0.label", "clean"), "clean"),
    (_with("attack", [{"name": "fgsm", "label": "A"}, {"name": "pgd", "label": "A"}]), "unique"),
    (_with("attack", {"name": "fgsm"}), "attack"),
    (_with("model.name", "no-such-model"), "unknown model"),
    (_with("model.name", 5), "model.name"),
    (_with("model.bogus", 3), "digits-cnn"),
    (_without("model"), "model"),
    (_with("data", "digits"), "data"),
    (_with("model", ["digits-cnn"]), "model"),
    (_with("train", [{"augment": [{"name": "mixup"}]}]), "label"),
    (_with("train", [{"label": "m", "augment": [{"name": "no-such-aug"}]}]), "unknown training augmentation"),
    (_with("train", [{"label": "m", "augment": [{"name": "mixup", "alpha": -1}]}]), "mixup"),
    (_with("train", [{"label": "m", "augment": "mixup"}]), "augment"),
    (_with("train", [{"label": "m", "bogus": 1}]), "bogus"),
    (_with("train", [{"label": "base"}]), "unique"),
    (_with("train", [{"label": "m", "epochs": 0}]), "train[m].epochs"),
    (_with("train", [{"label": "m", "augment": [{"name": "pgd-training", "params": {"eps": -1}}]}]), "pgd"),
    (_with("train", [{"label": "m", "augment": [{"name": "pgd-training", "attack": "nope"}]}]), "nope"),
    (_with("defense", [{"label": "g"}]), "defense"),
    (_with("defense", [{"label": "g", "chain": []}]), "empty"),
    (_with("defense", [{"label": "none", "chain": [{"name": "crop-rescale"}]}]), "none"),
    (_with("defense", [{"label": "clean", "chain": [{"name": "crop-rescale"}]}]), "clean"),
    (_with("defense", [{"label": "g", "chain": [{"name": "no-such-defense"}]}]), "unknown"),
    (_with("defense", [{"label": "g", "chain": [{"name": "crop-rescale", "min_scale": 2.0}]}]), "crop-rescale"),
    (_with("defense", [{"label": "g", "chain": [{"name": "crop-rescale"}], "repeats": 0}]), "repeats"),
    (_with("defense", [{"label": "g", "chain": [{"name": "crop-rescale"}], "extra": 1}]), "extra"),
    (_with("defense", "crop-rescale"), "defense"),
    (_with("attack.0.eps", 8), "did you mean 8/255?"),  # meant 8/255: a linf eps of 8 allows any image
    (_with("attack", [{"name": "pgd", "norm": "l2", "eps": 20, "steps": 1}]), "beyond the l2 diameter 8"),
    (_with("attack", [{"name": "apgd", "norm": "l1", "eps": 100, "steps": 1}]), "beyond the l1 diameter 64"),
    (_with("model.name", "lenet5"), "lenet5 cannot take the data's 1x8x8 (C x H x W) images"),
]


def _exits_2_in_one_line(raw, needle, tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text(dumps(raw))
    res = CliRunner().invoke(cli, ["run", str(cfg), "--out", str(tmp_path / "r.h5")])
    out = res.output.strip()
    assert res.exit_code == 2, f"exit {res.exit_code}: {out[-400:]} {res.exception!r}"
    assert len(out.splitlines()) == 1 and "Traceback" not in out, out
    assert needle in out, out
    assert not (tmp_path / "cache").exists(), "a model trained before the config was refused"


@pytest.mark.parametrize("raw,needle", list(schema_cases()))
def test_every_field_refuses_a_value_of_the_wrong_type(raw, needle, tmp_path):
    _exits_2_in_one_line(raw, needle, tmp_path)


@pytest.mark.parametrize("raw,needle", HAND, ids=[f"hand{i}" for i in range(len(HAND))])
def test_hand_written_malformed_configs(raw, needle, tmp_path):
    _exits_2_in_one_line(raw, needle, tmp_path)


def test_the_corpus_has_at_least_100_inputs():
    assert len(list(schema_cases())) + len(HAND) >= 100


def test_float_pixels_outside_0_1_are_refused_in_one_line(tmp_path):
    """An .npz of float pixels in 0-255 was evaluated as if in [0, 1] (clean accuracy 6 %, exit 0)."""
    import numpy as np

    from advx.testing import digits_model

    model, data = digits_model()
    import torch

    torch.save(model.state_dict(), tmp_path / "net.pt")
    x = data.x_test[:16].float().numpy() * 255
    np.savez(tmp_path / "d.npz", x=x, y=data.y_test[:16].numpy())
    res = CliRunner().invoke(cli, ["eval", "--model", "digits-cnn", "--checkpoint", str(tmp_path / "net.pt"),
                                   "--data", str(tmp_path / "d.npz"), "--attack", "fgsm", "--eps", "0.1",
                                   "--out", str(tmp_path / "r.h5")])
    out = res.output.strip()
    assert res.exit_code == 2 and len(out.splitlines()) == 1, out
    assert "float pixels in [0, 255]" in out and "divide by 255" in out, out


@pytest.mark.parametrize("defect,needle", [
    ("nan", "d.npz:x: 1 of 16 images have NaN or infinite pixels (the first at index 3)"),
    ("inf", "d.npz:x: 1 of 16 images have NaN or infinite pixels (the first at index 3)"),
    ("negative label", "1 test labels are outside 0..9 (the first, at index 3, is -1)"),
])
def test_nan_pixels_and_labels_outside_the_classes_are_refused_when_read(tmp_path, defect, needle):
    """An .npz with one NaN pixel was predicted class 0, counted correct and reported as clean
    100 %; a label of -1 ended in torch's IndexError (issue #46). Refused when read, naming the file."""
    import numpy as np
    import torch

    from advx.testing import digits_model

    model, data = digits_model()
    torch.save(model.state_dict(), tmp_path / "net.pt")
    x, y = data.x_test[:16].float().numpy().copy(), data.y_test[:16].numpy().copy()  # the data is shared
    if defect == "nan":
        x[3, 0, 2, 2] = np.nan
    elif defect == "inf":
        x[3, 0, 2, 2] = np.inf
    else:
        y[3] = -1
    np.savez(tmp_path / "d.npz", x=x, y=y)
    res = CliRunner().invoke(cli, ["eval", "--model", "digits-cnn", "--checkpoint", str(tmp_path / "net.pt"),
                                   "--data", str(tmp_path / "d.npz"), "--attack", "fgsm", "--eps", "0.1",
                                   "--out", str(tmp_path / "r.h5")])
    out = res.output.strip()
    assert res.exit_code == 2 and len(out.splitlines()) == 1 and "Traceback" not in out, out
    assert str(tmp_path / "d.npz") in out and needle in out, out
    assert not (tmp_path / "r.h5").exists()
