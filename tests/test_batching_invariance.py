"""The evaluator batches by memory, not by seed block (issue #34): few model calls, and a sample's
numbers are the same whatever the batch size, the world size, or which samples share its batch."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

import advx
from advx.evaluation.experiment import merge_run
from advx.streams import SampleStreams, content_keys, draw_streams
from advx.testing import digits_model


def test_pgd_through_evaluate_calls_the_model_at_most_twice_a_direct_call_plus_4(tmp_path):
    model, data = digits_model()
    x, y = data.x_test[:512].float(), data.y_test[:512]
    calls = []
    hook = model.register_forward_hook(lambda m, i, o: calls.append(len(i[0])))  # the evaluator copies the model
    try:
        advx.create("attack", "pgd", eps=0.1)(model, x, y, generator=torch.Generator().manual_seed(0))
        direct = len(calls)
        calls.clear()
        advx.evaluate(model, (x, y), attack="pgd", eps=0.1, batch_size=512, out=tmp_path / "r.h5")
        through = len(calls)
    finally:
        hook.remove()
    assert direct == 10
    assert through <= 2 * direct + 4, f"{through} model calls through advx.evaluate for a 10-call attack"


DOUBLE_NET = """
import torch
import advx


class Double(torch.nn.Module):
    # the digits CNN computing in float64: its outputs no longer depend on the batch's shape in
    # the last bit (float32 kernels round differently for different batch sizes)
    def __init__(self):
        super().__init__()
        self.net = advx.create("model", "digits-cnn").build(10, 1).double()

    def forward(self, x):
        return self.net(x.double()).float()


def build():
    return Double()
"""


@pytest.fixture()
def double_net(tmp_path, monkeypatch):
    (tmp_path / "double_net.py").write_text(DOUBLE_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    yield "python:double_net:build"
    sys.modules.pop("double_net", None)


def config(batch, model="digits-cnn"):
    """Every kind of per-sample draw: PGD's random start, random targets, Square's windows and
    signs, a randomized defence (crop-rescale) evaluated with repeats and attacked with EOT."""
    return {
        "experiment": {"name": "inv", "seed": 3},
        "data": {"name": "digits", "test_limit": 100},
        "model": {"name": model, "train": {"epochs": 2, "batch_size": 64}},
        "defense": [{"label": "guo", "chain": [{"name": "crop-rescale", "min_scale": 0.75, "max_scale": 1.0}],
                     "repeats": 3}],
        "attack": [{"name": "pgd", "eps": 0.1, "steps": 3, "label": "PGD-3"},
                   {"name": "pgd", "eps": 0.1, "steps": 2, "target": "random", "label": "PGD-T"},
                   {"name": "square", "eps": 0.1, "queries": 15, "label": "Square"}],
        "evaluate": {"modes": ["oblivious", "adaptive"], "eot": 2, "chunk_size": 40, "batch_size": batch,
                     "metrics": ["accuracy"], "randomized_attack": "none"},
    }


def arrays(results):
    return {(c.cell.train, c.cell.defense, c.cell.attack, c.cell.mode): c.arrays for c in results.cells}


def test_per_sample_arrays_are_identical_across_batch_sizes_and_shards(tmp_path, double_net):
    """Identical arrays for a float64 network; a float32 one rounds its outputs differently per
    batch shape (~1e-6), which can move a sample whose margin is that small, draws or not."""
    cache = tmp_path / "cache"
    runs = {b: advx.load_experiment(config(b, double_net)).run(tmp_path / f"b{b}.h5", cache_dir=cache)
            for b in (7, 100, "auto")}
    exp = advx.load_experiment(config(100, double_net))
    for rank in range(2):
        assert exp.run(tmp_path / "sharded.h5", cache_dir=cache, shard=(rank, 2)) is None
    runs["2 shards"] = merge_run(tmp_path / "sharded.h5")
    ref = arrays(runs[100])
    assert len(ref) == 11  # 2 clean, 3 attacks x (undefended, oblivious and adaptive on guo)
    for label, res in runs.items():
        got = arrays(res)
        assert got.keys() == ref.keys(), label
        for key, cell in ref.items():
            for name, values in cell.items():
                assert np.array_equal(values, got[key][name]), (label, key, name)


def test_a_sample_wrong_on_clean_input_is_not_attacked_and_never_robust(tmp_path):
    model, data = digits_model()
    x, y = data.x_test[:64].float(), data.y_test[:64].clone()
    y[:5] = (y[:5] + 1) % 10  # five labels the model surely gets wrong
    res = advx.evaluate(model, (x, y), attack="fgsm", eps=0.0, batch_size=64, out=tmp_path / "r.h5")
    clean = next(c for c in res.cells if c.cell.mode == "clean")
    attacked = next(c for c in res.cells if c.cell.mode != "clean")
    order = np.argsort(attacked.arrays["index"])
    assert not clean.arrays["correct"][np.argsort(clean.arrays["index"])][:5].any()
    assert not attacked.arrays["correct"][order][:5].any()
    assert (attacked.arrays["linf"][order][:5] == 0).all()  # kept their clean input


def test_streams_draw_per_sample_whatever_the_subset():
    base = 1234
    rows = torch.arange(10, 20)
    whole = SampleStreams.for_rows(base, rows)
    a = whole.uniform((10, 5))
    b = whole.normal((10, 3))
    part = SampleStreams.for_rows(base, rows[[2, 7]])
    assert torch.equal(part.uniform((2, 5)), a[[2, 7]])
    assert torch.equal(part.normal((2, 3)), b[[2, 7]])
    # a view advances only its rows: the others' next draws are unchanged
    again = SampleStreams.for_rows(base, rows)
    again.uniform((10, 5))
    again[torch.tensor([0, 1])].uniform((2, 1))
    nxt = again.integers(0, 7, (10, 4))
    fresh = SampleStreams.for_rows(base, rows)
    fresh.uniform((10, 5))
    first = fresh.integers(0, 7, (10, 4))
    assert torch.equal(nxt[2:], first[2:])
    assert not torch.equal(nxt[:2], first[:2])  # rows 0 and 1 are one draw further on
    big = SampleStreams.for_rows(base, torch.arange(2000)).normal((2000, 50))
    assert abs(float(big.mean())) < 0.01 and abs(float(big.std()) - 1) < 0.01
    ints = SampleStreams.for_rows(base, torch.arange(5000)).integers(0, 4, (5000,))
    assert set(ints.tolist()) == {0, 1, 2, 3}


def test_defence_draws_are_keyed_by_content():
    x = torch.rand(6, 1, 8, 8)
    assert torch.equal(content_keys(x, 5)[2:4], content_keys(x[2:4], 5))
    assert not torch.equal(content_keys(x, 5), content_keys(x, 6))
    s1 = draw_streams(x, 5, 0, 3).uniform((18, 2))
    s2 = draw_streams(x[1:2], 5, 1, 2).uniform((2, 2))  # draws 1 and 2 of image 1 alone
    assert torch.equal(s2, s1.view(3, 6, 2)[1:, 1])


@pytest.mark.parametrize("name", ["pgd", "square", "apgd", "fab"])
def test_a_first_party_attack_gives_each_sample_the_same_output_in_any_batch(name):
    model, data = digits_model()
    x, y = data.x_test[:24].float(), data.y_test[:24]
    params = {"pgd": {"steps": 3}, "square": {"queries": 20}, "apgd": {"steps": 4}, "fab": {"steps": 3}}[name]
    attack = advx.create("attack", name, eps=0.1, **params)
    whole = attack(model, x, y, generator=SampleStreams.for_rows(9, torch.arange(24)))
    parts = torch.cat([attack(model, x[i:i + 5], y[i:i + 5], generator=SampleStreams.for_rows(9, torch.arange(i, min(i + 5, 24))))
                       for i in range(0, 24, 5)])
    # the same draws, so the same point: up to the last bit of a kernel whose rounding depends
    # on the batch's shape (the model's outputs differ by ~1e-6 between batch sizes on a CPU)
    assert torch.allclose(whole, parts, rtol=0, atol=1e-5)
