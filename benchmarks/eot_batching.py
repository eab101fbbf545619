"""An adaptive PGD cell with EOT through a randomized defence, against its physical limit.

Trains the digits CNN (10 epochs, seed 0) and attacks it behind Guo et al.'s crop-rescale with
PGD-10 and EOT over ``--eot`` draws (the transform is differentiable: no BPDA), with 1, 2, 4 and
all the draws of a step in one pass (``DefendedClassifier.max_batch``: the batch repeated, each
copy its own draw). The physical limit of the cell is steps x eot forward+backward passes of the
model on a transformed batch (the transform's own cost included, nothing else); it is measured
right before each round, and the settings are timed in turn ``--pairs`` times (the machine is
noisy: medians, and the median of the per-round ratios). Also reports robust accuracy under
each (same budget; the draws differ by seeding only).

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
import torch.nn.functional as F

import advx
from advx.defense import build_defended, set_attacking
from advx.testing import digits_model


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=256)
    ap.add_argument("--eot", type=int, default=20)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--pairs", type=int, default=5)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--epochs", type=int, default=10, help="training epochs of the digits CNN")
    ap.add_argument("--out", default="bench_results/eot_batching.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    model, data = digits_model(epochs=args.epochs)
    model = model.to(device)
    for p in model.parameters():
        p.requires_grad_(False)
    x, y = data.x_test[:args.n].float().to(device), data.y_test[:args.n].to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize(device)
    pgd = advx.create("attack", "pgd", eps=0.1, steps=args.steps)
    guo = advx.create("inference_defense", "crop-rescale", min_scale=0.75, max_scale=1.0)
    widths = sorted({1, 2, 4, args.eot})

    def limit() -> float:
        g = torch.Generator().manual_seed(0)
        sync()
        t0 = time.perf_counter()
        for _ in range(args.steps * args.eot):
            xi = x.clone().requires_grad_(True)
            torch.autograd.grad(F.cross_entropy(model(guo.transform(xi, model, g, {})), y), xi)
        sync()
        return time.perf_counter() - t0

    def cell(draws_per_pass: int) -> tuple[float, float]:
        defended = build_defended(model, [guo], repeats=10, eot=args.eot, seed=0)
        defended.max_batch = len(x) * draws_per_pass
        sync()
        t0 = time.perf_counter()
        set_attacking(defended, True)
        x_adv = pgd(defended, x, y, generator=torch.Generator().manual_seed(0))
        sync()
        seconds = time.perf_counter() - t0
        set_attacking(defended, False)
        with torch.no_grad():
            acc = (defended(x_adv).argmax(1) == y).float().mean().item() * 100
        return seconds, acc

    limits, seconds, accs = [], {w: [] for w in widths}, {}
    for _ in range(args.pairs):
        limits.append(limit())
        for w in widths:
            s, accs[w] = cell(w)
            seconds[w].append(s)
    rows = [[f"limit: {args.steps * args.eot} forward+backward passes", round(statistics.median(limits), 3),
             f"{min(limits):.2f}-{max(limits):.2f}", 1.0, None, None]]
    for w in widths:
        rows.append([f"{w}" + (" (CPU default)" if w == 1 else ""), round(statistics.median(seconds[w]), 3),
                     f"{min(seconds[w]):.2f}-{max(seconds[w]):.2f}",
                     round(statistics.median(s / lim for s, lim in zip(seconds[w], limits)), 3),
                     round(statistics.median(s / one for s, one in zip(seconds[w], seconds[1])), 3), round(accs[w], 2)])
    table = {"title": f"adaptive PGD-{args.steps}, EOT {args.eot}, crop-rescale, {args.n} digits images",
             "columns": ["draws per pass", "seconds (median)", "seconds (range)", "time vs limit",
                         "time vs one draw per pass", "robust accuracy (%)"],
             "rows": rows}
    out = {"command": "python " + " ".join(sys.argv), "date": time.strftime("%Y-%m-%d"),
           "machine": {"platform": platform.platform(), "device": str(device), "threads": torch.get_num_threads(),
                       "torch": torch.__version__},
           "limit_s": limits, "limit_passes": args.steps * args.eot, "limit_median_s": statistics.median(limits),
           "seconds": {str(w): v for w, v in seconds.items()}, "table": table}
    print(f"limit ({args.steps * args.eot} forward+backward passes): {statistics.median(limits):.3f} s")
    for row in [table["columns"], *table["rows"]]:
        print(" | ".join(str(v) for v in row))
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(out, indent=1))
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
