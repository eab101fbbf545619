"""AutoAttack where it has work to do (issue #48, item 4): on a network that keeps real robustness.

A speed-up measured on a non-robust network, where APGD-CE breaks nearly everything in a few
steps, says little. This trains (on this CPU, cached like the papers' models) LeNet-5 on
Fashion-MNIST with PGD adversarial training at the data set's usual budget (linf 0.1; Madry et
al. 2018's recipe with 10 steps of 0.025), then runs the reference AutoAttack (``pyautoattack``,
Croce & Hein's code) and advx's standard AutoAttack on the same test images, interleaved round by
round, and stores time, robust count and the samples robust under only one of them::

    python benchmarks/robust_autoattack.py --out benchmarks/results/autoattack_robust_fmnist_cpu.json

advx runs through ``advx.evaluate`` (the evaluator: exact savings apply, as for any user).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import autoattack_reference as ref  # noqa: E402


def config(args: argparse.Namespace) -> dict:
    return {
        "experiment": {"name": "robust-fmnist", "seed": 0, "cache_dir": str(args.cache)},
        "data": {"name": "fashion-mnist", "test_limit": args.n},
        "model": {"name": "lenet5", "train": {
            "epochs": args.epochs, "batch_size": 128, "optimizer": "adam", "lr": 1e-3,
            "augment": [{"name": "pgd-training", "params": {"eps": args.eps, "alpha": args.eps / 4, "steps": 10}}]}},
        "attack": [{"name": "fgsm", "eps": args.eps}],
        "evaluate": {"modes": ["oblivious"]},
    }


def robust_network(args: argparse.Namespace):
    """The PGD-trained LeNet-5 (trained once, then read from the cache) and the test images."""
    import advx

    t0 = time.perf_counter()
    res = advx.load_experiment(config(args)).run(args.cache / "robust_fmnist.h5")
    net = res.context["models"]["base"].eval()
    data = res.context["data"]
    from advx.api import as_float

    x, y = as_float(data.x_test).cpu(), data.y_test.cpu()  # uint8 pixels to [0, 1]
    fgsm = next(c for c in res.cells if c.cell.attack != "clean")
    info = {"trained_s": round(time.perf_counter() - t0, 1), "cached": bool(res.models["base"].get("cached")),
            "clean": round(res.get("base", "none", "clean").accuracy, 2), "fgsm": round(fgsm.accuracy, 2)}
    return net, x, y, info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="test images")
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--epochs", type=int, default=6)
    ap.add_argument("--rounds", type=int, default=2, help="reference and advx timed this many times, interleaved")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--cache", type=Path, default=Path("runs/cache"))
    ap.add_argument("--out", type=Path)
    args = ap.parse_args()
    torch.manual_seed(0)
    dev = torch.device("cpu")
    net, x, y, info = robust_network(args)
    print(f"robust network: {info}", flush=True)
    runs: dict[str, list] = {"reference": [], "advx": []}
    for r in range(args.rounds):  # interleaved: drift on the machine hits both alike
        t, flags, members = ref.run_reference(net, x, y, args.eps, args.batch, dev, args.steps, args.queries)
        runs["reference"].append((t, flags, members, None, None))
        print(f"round {r + 1} reference {t:.1f} s robust {int(flags.sum())}", flush=True)
        t, flags, breakdown, counts, members = ref.run_advx(net, x, y, args.eps, args.batch, dev, args.steps,
                                                            args.queries)
        runs["advx"].append((t, flags, members, breakdown, counts))
        print(f"round {r + 1} advx {t:.1f} s robust {int(flags.sum())} {breakdown}", flush=True)
    out = {}
    for lib, rs in runs.items():
        mid = sorted(rs, key=lambda q: q[0])[(len(rs) - 1) // 2]
        out[lib] = {"seconds": round(mid[0], 2), "rounds_seconds": [round(q[0], 2) for q in rs],
                    "robust": int(mid[1].sum()), "robust_accuracy": round(100 * float(mid[1].mean()), 2),
                    "member_seconds": mid[2], "after_each_member": mid[3], "passes": mid[4],
                    "flags": mid[1].astype(int).tolist()}
    a, b = np.array(out["advx"]["flags"], bool), np.array(out["reference"]["flags"], bool)
    report = {
        "command": "python benchmarks/robust_autoattack.py " + " ".join(sys.argv[1:]),
        "network": f"LeNet-5, Fashion-MNIST, PGD-AT linf {args.eps:g} (10 steps of {args.eps / 4:g}), "
                   f"{args.epochs} epochs Adam, seed 0",
        "attack": f"AutoAttack standard, Linf {args.eps:g}, steps {args.steps}, Square queries {args.queries}",
        "n": args.n, "rounds": args.rounds, "date": time.strftime("%Y-%m-%d"), "network_info": info,
        "machine": {"device": "cpu", "cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__},
        "results": out, "time_ratio": round(out["advx"]["seconds"] / out["reference"]["seconds"], 3),
        "robust_only_under_advx": np.nonzero(a & ~b)[0].tolist(),
        "robust_only_under_reference": np.nonzero(b & ~a)[0].tolist(),
    }
    print(json.dumps({k: v for k, v in report.items() if k != "results"}, indent=1))
    for lib in out:
        print(lib, {k: v for k, v in out[lib].items() if k != "flags"})
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(report, indent=1) + "\n")


if __name__ == "__main__":
    main()
