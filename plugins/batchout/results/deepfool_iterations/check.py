"""DeepFool iterations on the stored MNIST baseline: ours (the paper's accumulation, clip="point",
and the per-step cut, clip="perturbation") against torchattacks, 200 test images.

    python plugins/batchout/results/deepfool_iterations/check.py runs/batchout_mnist_full.h5 > output.txt
"""
import sys

import h5py
import torch
import torchattacks

import advx
from advx.data.bundle import as_float
from advx.training import load_checkpoint

with h5py.File(sys.argv[1], "r", locking=False) as f:
    checkpoint = f["models/base"].attrs["checkpoint"]
model = advx.create("model", "batchout-mnist").build(10, 1)
model.load_state_dict(load_checkpoint(checkpoint))
model.eval()
data = advx.create("dataset", "mnist", root="data").load()
x, y = as_float(data.x_test[:200]), data.y_test[:200]


def acc(x_adv):
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).float().mean().item() * 100


print(f"clean {acc(x):.1f}")
for clip in ("point", "perturbation"):
    for steps in (1, 2, 3, 5, 50):
        x_adv = advx.create("attack", "deepfool", steps=steps, clip=clip)(model, x, y)
        l2 = (x_adv - x).flatten(1).norm(dim=1)
        print(f"advx DeepFool clip={clip:<12} {steps:>2} it: {acc(x_adv):5.1f} %  mean l2 {l2.mean():.3f}  "
              f"median l2 {l2.median():.3f}")
for steps in (5, 50):
    print(f"torchattacks DeepFool {steps:>2} it: {acc(torchattacks.DeepFool(model, steps=steps, overshoot=0.02)(x, y)):5.1f} %")
