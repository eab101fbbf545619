"""Time the quickstart as a new user runs it, and split the time: training, each threat model, the rest; keep its tables.

Runs ``advx run examples/quickstart.toml`` in a fresh process into a fresh run file and model
cache (nothing reused), measures the wall time of the whole command, then reads the split from the
run file itself: model training (``models/*`` seconds), the seconds of every cell grouped by mode
(clean, oblivious, adaptive, black-box) and what is left (start-up, data, metrics, report), and
stores the run's result tables beside them (the README shows the adaptive one from here).

    python benchmarks/quickstart.py --out benchmarks/results/quickstart.json
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
import torch

ROOT = Path(__file__).resolve().parent.parent


def split(run_file: Path) -> dict:
    with h5py.File(run_file, "r") as f:
        training = sum(float(f["models"][m].attrs.get("seconds", 0.0)) for m in f.get("models", {}))
        modes: dict[str, float] = {}
        forwards: dict[str, int] = {}
        per_cell = []
        for name in f["cells"]:
            attrs = f["cells"][name].attrs
            spec = json.loads(attrs["spec"])
            mode = spec["mode"]
            modes[mode] = modes.get(mode, 0.0) + float(attrs.get("seconds", 0.0))
            forwards[mode] = forwards.get(mode, 0) + int(attrs.get("forwards", 0))
            per_cell.append({**spec, "seconds": round(float(attrs.get("seconds", 0.0)), 2),
                             "forwards": int(attrs.get("forwards", 0)), "backwards": int(attrs.get("backwards", 0))})
        n = int(f["test/index"].shape[0])
        cells = len(f["cells"])
    return {"training_s": round(training, 2), "modes_s": {k: round(v, 2) for k, v in modes.items()},
            "forwards": forwards, "test_samples": n, "cells": cells,
            "per_cell": sorted(per_cell, key=lambda c: -c["seconds"])}


def tables_of(run_file: Path) -> list[dict]:
    """The run's own result tables as ``advx report`` prints them (worst case, each threat model):
    every cell's own number, stored beside the times they took."""
    import advx
    from advx.evaluation.report import all_tables

    return [t.to_dict() for t in all_tables(advx.open_run(run_file))]


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--config", default=str(ROOT / "examples" / "quickstart.toml"))
    ap.add_argument("--device", default=None, help="passed to advx run (default: the config's)")
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as d:
        run_file = Path(d) / "quickstart.h5"
        cmd = [sys.executable, "-m", "advx.cli", "run", args.config, "--out", str(run_file),
               "--set", f"experiment.cache_dir={Path(d) / 'cache'}"] + (["--device", args.device] if args.device else [])
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, env={**os.environ, "ADVX_PROGRESS": "0"})
        wall = time.perf_counter() - t0
        if proc.returncode != 0:
            sys.exit(f"quickstart failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
        parts = split(run_file)
        locks = sorted(p.name for p in Path(d).rglob("*.lock"))
        results = tables_of(run_file)
    parts["wall_s"] = round(wall, 2)
    parts["other_s"] = round(wall - parts["training_s"] - sum(parts["modes_s"].values()), 2)
    parts["lock_files_left"] = locks
    rows = [["whole command (wall)", parts["wall_s"]], ["training", parts["training_s"]]]
    rows += [[f"{mode} cells", sec] for mode, sec in parts["modes_s"].items()]
    rows += [["everything else (start-up, data, metrics, tables)", parts["other_s"]]]
    table = {"title": f"quickstart time split ({parts['test_samples']} test images, {parts['cells']} cells)",
             "columns": ["part", "seconds"], "rows": rows}
    import advx

    report = {"table": table, "tables": [table, *results], "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
              "run": " ".join(["advx", *cmd[3:]]), "date": time.strftime("%Y-%m-%d"),
              "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(),
                          "threads": torch.get_num_threads(), "torch": torch.__version__, "advx": advx.__version__,
                          "device": args.device or "config"},
              **parts, "stdout_tail": proc.stdout[-1500:]}
    for c in parts["per_cell"][:6]:
        print(f"  {c['seconds']:7.2f} s  {c['train']}/{c['defense']}/{c['attack']}/{c['mode']}  ({c['forwards']} forwards)")
    print(f"quickstart: {wall:.1f} s wall; training {parts['training_s']} s; "
          + ", ".join(f"{k} {v} s" for k, v in parts["modes_s"].items()) + f"; other {parts['other_s']} s")
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1))
    return report


if __name__ == "__main__":
    main()
