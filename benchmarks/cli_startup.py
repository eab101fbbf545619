"""How long the CLI takes to answer: `advx --help`, `--version`, and `list`/`describe`/`plugins`
from a current catalog (the first call after an install builds it and imports every plugin; that
cold call is timed too). Median and range of ``--repeats`` runs each; prints a table, writes JSON:

    python benchmarks/cli_startup.py --out benchmarks/results/cli_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

COMMANDS = [["--help"], ["--version"], ["list", "attack"], ["describe", "attack", "pgd"], ["plugins"]]


def timed(args: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "advx", *args], env=env, capture_output=True, check=True)
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--out", default="bench_results/cli_startup.json")
    args = ap.parse_args()
    env = {**os.environ, "ADVX_CACHE_DIR": tempfile.mkdtemp(prefix="advx-bench-cache-")}
    rows = [["list attack (cold: builds the catalog)", timed(["list", "attack"], env), "", 1]]
    for cmd in COMMANDS:
        runs = [timed(cmd, env) for _ in range(args.repeats)]
        rows.append([" ".join(cmd), statistics.median(runs), f"{min(runs):.2f}-{max(runs):.2f}", len(runs)])
    table = {"title": "advx CLI start-up (s)", "columns": ["command", "seconds (median)", "range", "runs"],
             "rows": rows}
    out = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
           "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count()}, "table": table}
    for r in rows:
        print(f"{r[0]:40s} {r[1]:.2f} {r[2]}")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
