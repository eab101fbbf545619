"""Data-parallel runs: torchrun with 2 CPU processes (gloo) and separate shard jobs give the
same numbers as one process; interrupted shards resume; bad shard input exits 2."""

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner

import advx
from advx.cli import cli
from advx.batching import seed_block
from advx.distributed import Dist, shard_bounds, split_batch
from advx.evaluation.experiment import merge_run

CONFIG = textwrap.dedent("""
    [experiment]
    seed = 0
    device = "cpu"
    [data]
    name = "digits"
    test_limit = 100
    [model]
    name = "digits-cnn"
    [model.train]
    epochs = 2
    batch_size = 64
    [[defense]]
    label = "guo"
    chain = [{ name = "crop-rescale" }]
    repeats = 2
    [[attack]]
    name = "pgd"
    eps = 0.1
    steps = 3
    [evaluate]
    chunk_size = 16
    modes = ["oblivious", "adaptive"]
    randomized_attack = "none"
""")


def cells(path):
    with h5py.File(path, "r") as f:
        return {k: {n: f["cells"][k][n][()] for n in f["cells"][k]} for k in f["cells"]}


def assert_same_cells(a, b):
    assert a.keys() == b.keys()
    for key in a:
        for name in ("index", "label", "prediction", "correct"):
            assert np.array_equal(a[key][name], b[key][name]), (key, name)
        for name in ("loss", "linf", "l2"):
            np.testing.assert_allclose(a[key][name], b[key][name], atol=1e-4, err_msg=f"{key} {name}")


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    d = tmp_path_factory.mktemp("single")
    (d / "x.toml").write_text(CONFIG)
    advx.load_experiment(d / "x.toml").run(d / "run.h5", cache_dir=d / "cache")
    return d


def test_shard_bounds_deal_whole_seed_blocks_evenly():
    for n, block, world in [(100, 16, 3), (539, 34, 2), (10_000, 500, 8), (10, 16, 2), (3, 1, 5), (97, 7, 4)]:
        spans = [shard_bounds(n, block, r, world) for r in range(world)]
        assert spans[0][0] == 0 and spans[-1][1] == n
        assert all(a[1] == b[0] for a, b in zip(spans, spans[1:]))  # contiguous, nothing twice
        assert all(lo % block == 0 for lo, hi in spans if hi > lo)  # seeds keyed by block start stay put
        sizes = [-(-(hi - lo) // block) for lo, hi in spans]  # blocks per rank
        assert max(sizes) - min(sizes) <= 1, (n, block, world, spans)
        assert spans[0][1] > spans[0][0]  # rank 0 (the sanity checks) is never the empty one
    assert [shard_bounds(10, 16, r, 2) for r in range(2)] == [(0, 10), (10, 10)]  # more ranks than blocks


def test_seed_block_is_at_most_a_batch_and_about_a_sixteenth_of_the_test_set():
    assert seed_block(539, 64, "cpu") == 34
    assert seed_block(10_000, 500, "cuda") == 500
    assert seed_block(10_000, "auto", "cpu") == 256
    assert seed_block(10_000, "auto", "cuda") == 625
    assert seed_block(100, 64, "cpu") == 32  # small test sets: fewer blocks, none under 32 samples
    assert seed_block(100, 16, "cpu") == 16  # ...unless the batch is smaller


def test_split_batch_weights_make_the_mean_gradient_exact():
    values = torch.rand(7)
    parts = [split_batch(torch.arange(7), Dist(r, 2)) for r in range(2)]
    assert torch.equal(torch.cat([p for p, _ in parts]), torch.arange(7))
    # DDP averages the ranks' gradients: mean over ranks of weight_r * mean_r must be the batch mean
    averaged = sum(w * values[p].mean() for p, w in parts) / 2
    assert float(averaged) == pytest.approx(float(values.mean()))
    assert split_batch(torch.arange(1), Dist(1, 2)) == (torch.arange(1), 1.0)  # tiny batch: every rank takes it


def torchrun(tmp_path, nproc, *args):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVX_PROGRESS": "0"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc),
                          "-m", "advx", "run", str(tmp_path / "x.toml"), "--out", str(tmp_path / "run.h5"), *args],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    return res


def test_torchrun_two_cpu_ranks_match_one_process(single, tmp_path):
    (tmp_path / "x.toml").write_text(CONFIG)
    # one chunk holds the whole test set: ranks are dealt seed blocks, not chunks, so both work
    res = torchrun(tmp_path, 2, "--set", f"experiment.cache_dir={tmp_path / 'cache'}",
                   "--set", "evaluate.chunk_size=1024")
    assert res.stdout.count("per-sample worst case") == 1  # rank 0 alone prints the tables
    assert res.stdout.count("accuracy (%) — oblivious attacks") == 1
    assert not (tmp_path / "run.h5.shards").exists()  # merged, then removed
    assert_same_cells(cells(single / "run.h5"), cells(tmp_path / "run.h5"))
    with h5py.File(single / "run.h5", "r") as a:
        h = a["models"]["base"].attrs["hash"]
    wa = torch.load(single / "cache" / "models" / f"{h}.pt", weights_only=True)["state_dict"]
    wb = torch.load(tmp_path / "cache" / "models" / f"{h}.pt", weights_only=True)["state_dict"]
    assert max(float((wa[k] - wb[k]).abs().max()) for k in wa) < 1e-4  # DDP training == one process


# three ranks and fewer samples than ranks (an empty rank); uneven shares end to end are the
# quickstart shape's (200 samples in whole seed blocks over 2 ranks), and test_shard_bounds_... deals
# every uneven shape without a process start (a 100-sample, 3-rank launch cost 24 s of the suite)
@pytest.mark.parametrize("test_limit,nproc", [(2, 3)])
def test_torchrun_awkward_shapes_match_one_process(single, tmp_path, test_limit, nproc):
    config = CONFIG.replace("test_limit = 100", f"test_limit = {test_limit}")
    (tmp_path / "x.toml").write_text(config)
    reference = single / "run.h5"
    if test_limit != 100:
        (tmp_path / "one").mkdir()
        (tmp_path / "one" / "x.toml").write_text(config)
        reference = tmp_path / "one" / "run.h5"
        advx.load_experiment(tmp_path / "one" / "x.toml").run(reference, cache_dir=single / "cache")
    torchrun(tmp_path, nproc, "--set", f"experiment.cache_dir={single / 'cache'}")  # the trained model is cached
    assert not (tmp_path / "run.h5.shards").exists()
    assert_same_cells(cells(reference), cells(tmp_path / "run.h5"))


OWN_LOSS_SCRIPT = textwrap.dedent("""
    import sys
    import torch
    import advx
    from advx.config import TrainSettings
    from advx.distributed import Dist
    from advx.training import train

    class OwnLoss:  # a recipe that computes its own (deterministic) loss: the hand-averaged path
        name = "own-loss"
        def setup(self, ctx): pass
        def augment(self, batch, ctx): return batch
        def loss(self, model, batch, ctx):
            return ctx.criterion(model(batch.x), batch.y) + 0.1 * model(batch.x * 0.5).square().mean()
        def teardown(self, ctx): pass

    def run(dist):
        data = advx.create("dataset", "digits").load()
        torch.manual_seed(0)
        model = advx.create("model", "digits-cnn").build(num_classes=10, in_channels=1)
        train(model, data, TrainSettings(epochs=1, batch_size=50), [OwnLoss()], seed=0,
              device=torch.device("cpu"), registry=None, dist=dist)
        return model.state_dict()

    if __name__ == "__main__":
        dist = Dist.from_env("cpu")
        state = run(dist)
        if dist.rank == 0:
            torch.save(state, sys.argv[1])
        dist.close()
""")


def test_recipes_own_loss_is_averaged_across_ranks(tmp_path):
    script = tmp_path / "own_loss.py"
    script.write_text(OWN_LOSS_SCRIPT)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "ADVX_PROGRESS": "0"}
    res = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                          str(script), str(tmp_path / "ddp.pt")], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    sys.path.insert(0, str(tmp_path))
    try:
        import own_loss
        single = own_loss.run(Dist())
    finally:
        sys.path.remove(str(tmp_path))
        sys.modules.pop("own_loss", None)
    ddp = torch.load(tmp_path / "ddp.pt", weights_only=True)
    assert max(float((single[k] - ddp[k]).abs().max()) for k in single) < 1e-4


def test_separate_shard_jobs_resume_and_merge(single, tmp_path):
    (tmp_path / "x.toml").write_text(CONFIG)
    exp = advx.load_experiment(tmp_path / "x.toml")
    out, cache = tmp_path / "run.h5", tmp_path / "cache"
    assert exp.run(out, cache_dir=cache, shard=(0, 2)) is None
    assert exp.run(out, cache_dir=cache, shard=(1, 2)) is None
    shard = out.parent / "run.h5.shards" / "rank-1-of-2.h5"
    with h5py.File(shard, "a") as f:  # a crash in the middle of one cell: its last chunk is lost
        g = next(g for k, g in f["cells"].items() if "adaptive" in k)
        victim = g.name
        block = seed_block(100, "auto", "cpu")
        rows = max(1, 16 // block) * block  # samples per resumable step (chunk_size 16, whole seed blocks)
        g.attrs["n_done"] = (int(g.attrs["n_done"]) - 1) // rows * rows  # whole steps survive a crash
        g.attrs["status"] = "running"
        seconds = {k: float(f["cells"][k].attrs["seconds"]) for k in f["cells"] if f["cells"][k].name != victim}
    with pytest.raises(advx.errors.StoreError, match="unfinished"):
        merge_run(out)
    exp.run(out, cache_dir=cache, shard=(1, 2))  # resumes: only the lost chunk is evaluated again
    with h5py.File(shard, "r") as f:
        assert {k: float(f["cells"][k].attrs["seconds"]) for k in seconds} == seconds
        assert f[victim].attrs["status"] == "done"
    results = merge_run(out)
    assert len(results.cells) == 5 and all(c.info["status"] == "done" for c in results.cells)
    assert not (out.parent / "run.h5.shards").exists()
    assert_same_cells(cells(single / "run.h5"), cells(out))


@pytest.mark.parametrize("args,needle", [(["merge", "{tmp}/none.h5"], "no shards to merge"),
                                         (["run", "{tmp}/x.toml", "--shard", "2/2"], "0 <= R < W"),
                                         (["run", "{tmp}/x.toml", "--shard", "one"], "R/W")])
def test_bad_shard_input_exits_2(tmp_path, args, needle):
    (tmp_path / "x.toml").write_text(CONFIG)
    res = CliRunner().invoke(cli, [a.format(tmp=tmp_path) for a in args])
    assert res.exit_code == 2 and needle in res.output, res.output


def test_quickstart_shape_under_torchrun_merges(tmp_path):
    """The README's `torchrun --nproc_per_node 2 -m advx run examples/quickstart.toml`: all the
    test samples in one 1,024-sample chunk used to leave rank 0 empty and the merge dead-ended.
    Same data, chunking, defences, attacks and threat models; fewer epochs, steps, draws and
    counteract steps."""
    quickstart = Path(__file__).resolve().parents[1] / "examples" / "quickstart.toml"
    (tmp_path / "x.toml").write_text(quickstart.read_text())
    shrink = ["model.train.epochs=2", "attack.1.steps=2", "attack.2.queries=5", "defense.1.repeats=2",
              "defense.0.chain.0.n=2", "defense.1.chain.0.n=2", "evaluate.eot=2",
              f"experiment.cache_dir={tmp_path / 'cache'}"]
    res = torchrun(tmp_path, 2, "--device", "cpu", *[a for s in shrink for a in ("--set", s)])
    assert "per-sample worst case" in res.stdout
    with h5py.File(tmp_path / "run.h5", "r") as f:
        assert len(f["test"]["index"]) == 200  # the quickstart's test_limit
        assert all(f["cells"][k].attrs["status"] == "done" and f["cells"][k].attrs["n_done"] == 200
                   for k in f["cells"])
    assert not (tmp_path / "run.h5.shards").exists()
