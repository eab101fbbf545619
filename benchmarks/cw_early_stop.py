"""What CW-L2's search costs: forwards per image, time, success and L2, paper's search vs ours.

Trains the digits CNN (10 epochs, seed 0; or LeNet-5 on 10,000 Fashion-MNIST images, 3 epochs,
with ``--dataset fashion-mnist``), then runs ``cw`` (9 x 100) on 360 test images with the
paper's search (``warm_start = false, search_rtol = 0``) with and without early stopping, each of
advx's two refinements alone, and advx's default (both). "Paper, every step" is the search as it
ran before early stopping dropped finished samples (900 forwards per image), the baseline the
speed issue measured against. The settings are timed in turn ``--pairs`` times (the machine is
noisy): seconds are medians, and each ratio is the median of the per-round ratios to that
baseline. Forward passes are counted by a hook. Prints a table and writes the JSON:

    python benchmarks/cw_early_stop.py --out benchmarks/results/cw_early_stop.json
    python benchmarks/cw_early_stop.py --dataset fashion-mnist --n 200 --out benchmarks/results/cw_early_stop_fmnist.json
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
from torch import nn

import advx
from advx.api import as_float
from advx.evaluation.counting import CountingModel

SETTINGS = {
    "paper, every step": dict(warm_start=False, search_rtol=0.0, abort_early=False),
    "paper + early stopping": dict(warm_start=False, search_rtol=0.0),
    "paper + search_rtol 0.5": dict(warm_start=False, search_rtol=0.5),
    "paper + warm start": dict(warm_start=True, search_rtol=0.0),
    "advx default (warm start + search_rtol 0.5)": {},
}


NETWORKS = {  # dataset: (network, training images, epochs)
    "digits": ("digits-cnn", None, 10),
    "fashion-mnist": ("lenet5", 10_000, 3),  # Debian's dataset-fashion-mnist; a second, larger check
}


def trained_network(dataset: str) -> tuple[nn.Module, advx.api.DataBundle]:
    torch.manual_seed(0)
    network, limit, epochs = NETWORKS[dataset]
    data = advx.create("dataset", dataset).load()
    model = advx.create("model", network).build(num_classes=10, in_channels=1)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    x, y = as_float(data.x_train[:limit]), data.y_train[:limit]
    for _ in range(epochs):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    return model.eval(), data


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=360)
    ap.add_argument("--dataset", choices=list(NETWORKS), default="digits")
    ap.add_argument("--pairs", type=int, default=3)
    ap.add_argument("--out", default="bench_results/cw_early_stop.json")
    args = ap.parse_args()
    model, data = trained_network(args.dataset)
    xt, yt = as_float(data.x_test[:args.n]), data.y_test[:args.n]
    seconds = {label: [] for label in SETTINGS}
    outcome = {}
    for _ in range(args.pairs):
        for label, settings in SETTINGS.items():
            counter = CountingModel(model)
            t = time.perf_counter()
            x_adv = advx.create("attack", "cw", **settings)(counter, xt, yt)
            seconds[label].append(time.perf_counter() - t)
            with torch.no_grad():
                fooled = model(x_adv).argmax(1) != yt
            l2 = (x_adv - xt).flatten(1).norm(dim=1)[fooled]
            outcome[label] = [round(counter.forward_rows / args.n, 1), round(100 * float(fooled.float().mean()), 2),
                              round(float(l2.median()), 4), round(float(l2.mean()), 4)]
    base = seconds["paper, every step"]
    rows = []
    for label, settings in SETTINGS.items():
        ratio = statistics.median(s / b for s, b in zip(seconds[label], base))
        fwd, success, med, mean = outcome[label]
        rows.append([label, fwd, round(statistics.median(seconds[label]), 2), round(ratio, 3), success, med, mean])
    table = {"title": f"CW-L2 9 x 100 on {args.n} {args.dataset} images ({NETWORKS[args.dataset][0]})", "columns":
             ["search", "forwards per image", "seconds (median)", "time vs paper, every step", "success (%)",
              "median L2", "mean L2"], "rows": rows}
    print("| " + " | ".join(table["columns"]) + " |")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({
        "command": " ".join(["python", *sys.argv]), "date": time.strftime("%Y-%m-%d"),
        "machine": {"platform": platform.platform(), "threads": torch.get_num_threads(), "torch": torch.__version__},
        "settings": SETTINGS, "seconds": seconds, "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
