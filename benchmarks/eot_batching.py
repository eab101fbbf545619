"""What batching the EOT draws saves: an adaptive PGD cell through a randomized defence.

Trains the digits CNN (10 epochs, seed 0) and attacks it behind Guo et al.'s crop-rescale with
PGD-10 and EOT over ``--eot`` draws (BPDA-free: the transform is differentiable), once with the
draws in one batched pass (CUDA's default) and once split into one draw per pass (the CPU
default, and the loop advx used before),
alternating the two ``--pairs`` times (the machine is noisy: the median ratio of the pairs is the
figure). Also reports robust accuracy under each (same budget; the draws differ by seeding only).

    python benchmarks/eot_batching.py --out benchmarks/results/eot_batching.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from pathlib import Path

import torch

import advx
from advx.defense import build_defended, set_attacking
from advx.testing import digits_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--eot", type=int, default=20)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--out", default="bench_results/eot_batching.json")
    args = ap.parse_args()
    model, data = digits_model(epochs=10)
    x, y = data.x_test[:args.n].float(), data.y_test[:args.n]
    pgd = advx.create("attack", "pgd", eps=0.1, steps=10)
    guo = advx.create("inference_defense", "crop-rescale", min_scale=0.75, max_scale=1.0)

    def cell(split: bool) -> tuple[float, float]:
        defended = build_defended(model, [guo], repeats=10, eot=args.eot, seed=0)
        defended.max_batch = len(x) if split else len(x) * args.eot  # one draw per pass, or all in one
        t0 = time.perf_counter()
        set_attacking(defended, True)
        x_adv = pgd(defended, x, y, generator=torch.Generator().manual_seed(0))
        set_attacking(defended, False)
        with torch.no_grad():
            acc = (defended(x_adv).argmax(1) == y).float().mean().item() * 100
        return time.perf_counter() - t0, acc

    rows, ratios = [], []
    for _ in range(args.pairs):
        t_loop, a_loop = cell(split=True)
        t_batch, a_batch = cell(split=False)
        ratios.append(t_batch / t_loop)
        rows.append((t_loop, t_batch, a_loop, a_batch))
    med = statistics.median(ratios)
    table = {"title": f"adaptive PGD-10, EOT {args.eot}, crop-rescale, {args.n} digits images",
             "columns": ["draws per pass", "seconds (median)", "seconds (range)", "robust accuracy (%)",
                         "time vs one draw per pass"],
             "rows": [["1 (loop)", statistics.median(r[0] for r in rows),
                       f"{min(r[0] for r in rows):.2f}-{max(r[0] for r in rows):.2f}", rows[0][2], 1.0],
                      [f"{args.eot} (batched)", statistics.median(r[1] for r in rows),
                       f"{min(r[1] for r in rows):.2f}-{max(r[1] for r in rows):.2f}", rows[0][3], round(med, 3)]]}
    out = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
           "machine": {"platform": platform.platform(), "cpu_count": torch.get_num_threads(),
                       "torch": torch.__version__},
           "pairs": [{"loop_s": a, "batched_s": b, "loop_acc": c, "batched_acc": d} for a, b, c, d in rows],
           "median_ratio": med, "table": table}
    for row in [table["columns"], *table["rows"]]:
        print(" | ".join(str(v) if not isinstance(v, float) else f"{v:.3f}" for v in row))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
