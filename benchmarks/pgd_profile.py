"""Where PGD's time goes beside the physical limit: torch.profiler tables (CUDA kernel time per
op) for one call of advx's PGD-10 and torchattacks' on the same batch, and the kernels ours runs
that the limit does not. Usage: python benchmarks/pgd_profile.py --device cuda [--n 1024]."""

from __future__ import annotations

import argparse

import torch
from torch.profiler import ProfilerActivity, profile

import advx
from advx.streams import SampleStreams


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=1024)
    ap.add_argument("--rows", type=int, default=30)
    args = ap.parse_args()
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = advx.create("model", "resnet18").build(10, 3).to(device).eval()
    for p in model.parameters():
        p.requires_grad_(False)
    x = torch.rand(args.n, 3, 32, 32, device=device)
    y = torch.randint(0, 10, (args.n,), device=device)
    eps = 0.1
    ours = advx.create("attack", "pgd", eps=eps, alpha=eps / 4, steps=10)
    import torchattacks

    ta = torchattacks.PGD(model, eps=eps, alpha=eps / 4, steps=10, random_start=True)

    def limit():
        for _ in range(10):
            xi = x.detach().requires_grad_(True)
            torch.autograd.grad(torch.nn.functional.cross_entropy(model(xi), y), xi)

    runs = {"limit": limit,
            "ours": lambda: ours(model, x, y, generator=SampleStreams.for_rows(0, torch.arange(args.n, device=device))),
            "torchattacks": lambda: ta(x, y)}
    acts = [ProfilerActivity.CPU] + ([ProfilerActivity.CUDA] if device.type == "cuda" else [])
    for name, fn in runs.items():
        fn()  # warm
        if device.type == "cuda":
            torch.cuda.synchronize()
        with profile(activities=acts) as prof:
            fn()
            if device.type == "cuda":
                torch.cuda.synchronize()
        key = "self_cuda_time_total" if device.type == "cuda" else "self_cpu_time_total"
        print(f"\n===== {name}")
        print(prof.key_averages().table(sort_by=key, row_limit=args.rows, max_name_column_width=60))


if __name__ == "__main__":
    main()
