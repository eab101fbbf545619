"""FGSM and PGD-10 against torchattacks', timed back to back many times on the same digits (the
paired benchmark's medians at 12 ms a call are at the timer's noise). Prints milliseconds per call:

    python plugins/attacks/results/fgsm_pgd_back_to_back/check.py > plugins/attacks/results/fgsm_pgd_back_to_back/output.txt
"""

import time

import torch
import torchattacks

import advx
from advx.api import as_float
from advx.testing import digits_model

model, data = digits_model()
x, y = as_float(data.x_test[:256]), data.y_test[:256]
ours_fgsm, ta_fgsm = advx.create("attack", "fgsm", eps=0.1), torchattacks.FGSM(model, eps=0.1)
ours_pgd = advx.create("attack", "pgd", eps=0.1, alpha=0.025, steps=10)
ta_pgd = torchattacks.PGD(model, eps=0.1, alpha=0.025, steps=10, random_start=True)


def ms(call, n):
    call()
    start = time.perf_counter()
    for _ in range(n):
        call()
    return (time.perf_counter() - start) / n * 1e3


def limit():
    xi = x.clone().requires_grad_(True)
    torch.autograd.grad(torch.nn.functional.cross_entropy(model(xi), y), xi)


print(f"torch {torch.__version__}, torchattacks {torchattacks.__version__}, {torch.get_num_threads()} threads, "
      f"256 digits, eps 0.1")
for _ in range(3):
    print(f"FGSM  ours {ms(lambda: ours_fgsm(model, x, y), 200):.2f} ms  torchattacks "
          f"{ms(lambda: ta_fgsm(x, y), 200):.2f} ms  one forward+backward {ms(limit, 200):.2f} ms")
for _ in range(3):
    print(f"PGD-10 ours {ms(lambda: ours_pgd(model, x, y, generator=torch.Generator().manual_seed(0)), 30):.1f} ms  "
          f"torchattacks {ms(lambda: ta_pgd(x, y), 30):.1f} ms")
