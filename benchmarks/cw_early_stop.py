"""What CW-L2's early stopping saves: forwards per image, time, success and median L2.

Trains the digits CNN (10 epochs, seed 0), then runs ``cw`` with its defaults (9 x 100) on 360
test images with ``abort_early`` on and off, and with ``search_rtol`` 0.25 (a sample stops its
binary search once its bracket on c is that narrow), counting the samples each forward pass carries.
Prints a table and writes the JSON:

    python benchmarks/cw_early_stop.py --out benchmarks/results/cw_early_stop.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

import advx


class SampleCounter(nn.Module):
    """Counts the samples that go through the model (a batched forward of k samples counts k)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model, self.samples = model, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.samples += len(x)
        return self.model(x)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=360)
    ap.add_argument("--out", default="bench_results/cw_early_stop.json")
    args = ap.parse_args()
    torch.manual_seed(0)
    data = advx.create("dataset", "digits").load()
    model = advx.create("model", "digits-cnn").build(num_classes=10, in_channels=1)
    opt = torch.optim.Adam(model.parameters(), 2e-3)
    x, y = data.x_train.float(), data.y_train
    for _ in range(10):
        for i in range(0, len(x), 64):
            opt.zero_grad()
            F.cross_entropy(model(x[i:i + 64]), y[i:i + 64]).backward()
            opt.step()
    model.eval()
    xt, yt = data.x_test[:args.n].float(), data.y_test[:args.n]
    rows = []
    for abort, rtol in ((True, 0.0), (False, 0.0), (True, 0.25)):
        counter = SampleCounter(model)
        t = time.perf_counter()
        x_adv = advx.create("attack", "cw", abort_early=abort, search_rtol=rtol)(counter, xt, yt)
        seconds = time.perf_counter() - t
        with torch.no_grad():
            fooled = model(x_adv).argmax(1) != yt
        l2 = (x_adv - xt).flatten(1).norm(dim=1)[fooled]
        rows.append([str(abort).lower(), rtol, round(counter.samples / args.n, 1), round(seconds, 1),
                     round(100 * float(fooled.float().mean()), 2), round(float(l2.median()), 4),
                     round(float(l2.mean()), 4)])
    table = {"title": f"CW-L2 9 x 100 on {args.n} digits images", "columns":
             ["abort_early", "search_rtol", "forwards per image", "seconds", "success (%)", "median L2",
              "mean L2"], "rows": rows}
    print("| " + " | ".join(table["columns"]) + " |")
    for r in rows:
        print("| " + " | ".join(str(v) for v in r) + " |")
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps({"command": " ".join(["python", *sys.argv]), "torch": torch.__version__,
                                          "table": table}, indent=2) + "\n")


if __name__ == "__main__":
    main()
