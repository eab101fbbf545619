"""The oblivious cache at work: 1 model x 5 defences x 3 attacks crafts each attack once.

Runs the grid once and reads from the store how many samples each attack crafted and what it cost
(seconds, forward and backward passes), plus the backward passes spent inside the defence cells
(zero: they only run the defences on the cached adversarials). An evaluator without the cache
would craft once per defence; ``craft_seconds_without_cache_estimate`` is that cost (crafting
time x number of defence variants). Prints and writes the JSON.

    python benchmarks/oblivious_cache.py --out benchmarks/results/oblivious_cache.json

The JSON holds a ``table`` (one row per attack) that README.md's marked block is generated from
(``benchmarks/readme_tables.py``), with the command, date and machine.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import torch

import advx

CONFIG = {
    "experiment": {"name": "cache-bench", "seed": 0},
    "data": {"name": "digits"},
    "model": {"name": "digits-cnn", "train": {"epochs": 10, "batch_size": 64, "lr": 2e-3}},
    "defense": [{"label": f"guo{i}", "chain": [{"name": "crop-rescale", "min_scale": 0.6 + 0.05 * i, "max_scale": 1.0}],
                 "repeats": 2} for i in range(5)],
    "attack": [{"name": "fgsm", "eps": 0.1, "label": "FGSM"},
               {"name": "pgd", "eps": 0.1, "steps": 20, "label": "PGD-20"},
               {"name": "apgd", "eps": 0.1, "steps": 50, "label": "APGD-50"}],
    "evaluate": {"modes": ["oblivious"], "metrics": ["accuracy"]},
}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default="benchmarks/results/oblivious_cache.json")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        exp = advx.load_experiment(CONFIG)
        t = time.perf_counter()
        res = exp.run(Path(tmp) / "run.h5")
        total = time.perf_counter() - t
    n = len(res.test["index"])
    crafts = {k.split("__")[2]: {"crafted_samples": int(v["crafted"]), "seconds": float(v["seconds"]),
                                 "forwards": int(v["forwards"]), "backwards": int(v["backwards"])}
              for k, v in res.adversarials.items()}
    cells = [c for c in res.cells if c.cell.mode == "oblivious"]
    per_defence_backwards = sum(int(c.info["backwards"]) for c in cells)
    craft_seconds = sum(v["seconds"] for v in crafts.values())
    defences = len({c.cell.defense for c in cells})
    report = {
        "grid": {"models": 1, "defences_incl_none": defences, "attacks": len(crafts), "test_samples": n},
        "attacks_crafted": crafts,
        "each_attack_crafted_once": all(v["crafted_samples"] == n for v in crafts.values()),
        "backward_passes_in_defence_cells": per_defence_backwards,
        "craft_seconds_total": craft_seconds,
        "craft_seconds_without_cache_estimate": craft_seconds * defences,
        "run_seconds": total,
        "device": "cuda" if torch.cuda.is_available() else "cpu",
        "command": "python " + " ".join(sys.argv),
        "date": time.strftime("%Y-%m-%d"),
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, torch {torch.__version__}",
    }
    report["table"] = {
        "title": f"oblivious cache: {defences} defence pipelines (incl. none) x {len(crafts)} attacks, {n} digits",
        "columns": ["attack", "samples crafted", "batched fwd+bwd passes", "s crafting (once)",
                    f"s crafting per defence (x{defences}, estimate)", "backward passes in its defence cells"],
        "rows": [[k, v["crafted_samples"], v["backwards"], round(v["seconds"], 2), round(v["seconds"] * defences, 2),
                  sum(int(c.info["backwards"]) for c in cells if c.cell.attack == k)] for k, v in crafts.items()],
    }
    print(json.dumps(report, indent=2))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
