"""Wall time of one experiment on 1 process vs W data-parallel processes (torchrun, gloo).

Runs the same config (default: the unshrunk quickstart) as one process with all the cores, then
under ``torchrun --nproc_per_node W`` with the cores split among the ranks, each from a cold
model cache (training is part of the job). Prints the samples each rank was dealt (seed blocks,
``advx.batching.seed_block``), the wall times, the speed-up and how many per-sample predictions
differ, and writes the JSON. Each job trains its own model, and DDP's gradient all-reduce sums in
another order than one process, so the weights agree to ~1e-5, not bit for bit, and an attack can
tip a borderline sample; with one shared checkpoint the predictions are identical (asserted in
tests/test_distributed.py).

    python benchmarks/distributed_cpu.py --out bench_results/distributed_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np
import torch

import advx
from advx.batching import seed_block
from advx.distributed import shard_bounds

ROOT = Path(__file__).resolve().parents[1]


def timed(cmd: list[str], env: dict[str, str]) -> float:
    t = time.perf_counter()
    res = subprocess.run(cmd, env=env, capture_output=True, text=True)
    if res.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return time.perf_counter() - t


def per_sample(path: Path) -> dict[str, np.ndarray]:
    with h5py.File(path, "r") as f:
        return {k: f["cells"][k]["prediction"][()] for k in f["cells"]}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", default=str(ROOT / "examples" / "quickstart.toml"))
    ap.add_argument("--world", type=int, default=2)
    ap.add_argument("--cores", type=int, default=os.cpu_count() or 1)
    ap.add_argument("--out", default="bench_results/distributed_cpu.json")
    args = ap.parse_args()
    exp = advx.load_experiment(args.config)
    data = exp.prepare_data(torch.device("cpu"))[0]
    n = len(data.y_test)
    block = seed_block(n, exp.config.evaluate.batch_size, "cpu")
    shares = [hi - lo for lo, hi in (shard_bounds(n, block, r, args.world) for r in range(args.world))]
    base = {**os.environ, "ADVX_PROGRESS": "0"}
    with tempfile.TemporaryDirectory() as tmp:
        t = Path(tmp)
        one = timed([sys.executable, "-m", "advx", "run", args.config, "--out", str(t / "one.h5"), "--device", "cpu",
                     "--set", f"experiment.cache_dir={t / 'cache1'}"],
                    {**base, "OMP_NUM_THREADS": str(args.cores)})
        many = timed([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node",
                      str(args.world), "-m", "advx", "run", args.config, "--out", str(t / "many.h5"), "--device", "cpu",
                      "--set", f"experiment.cache_dir={t / 'cacheW'}"],
                     {**base, "OMP_NUM_THREADS": str(max(1, args.cores // args.world))})
        a, b = per_sample(t / "one.h5"), per_sample(t / "many.h5")
        assert a.keys() == b.keys()
        differ = int(sum((a[k] != b[k]).sum() for k in a))
        total = int(sum(len(a[k]) for k in a))
    report = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "config": str(Path(args.config).resolve().relative_to(ROOT)) if ROOT in Path(args.config).resolve().parents
        else args.config,
        "machine": {"cpu_count": os.cpu_count(), "cores_used": args.cores, "platform": platform.platform(),
                    "torch": torch.__version__, "advx": advx.__version__},
        "test_samples": n, "seed_block": block, "world": args.world, "samples_per_rank": shares,
        "seconds_1_process": round(one, 1), f"seconds_{args.world}_processes": round(many, 1),
        "speedup": round(one / many, 2), "cells": len(a), "per_sample_predictions": total,
        "predictions_that_differ": differ,
    }
    print(f"{n} test samples in seed blocks of {block}; samples per rank: {shares}")
    print(f"| processes | threads each | wall (s) |\n| --- | --- | --- |\n| 1 | {args.cores} | {one:.1f} |\n"
          f"| {args.world} | {max(1, args.cores // args.world)} | {many:.1f} |")
    print(f"speed-up {one / many:.2f}x; {differ} of {total} per-sample predictions differ (separately trained models)")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n")


if __name__ == "__main__":
    main()
