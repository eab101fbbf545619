"""advx's l1 attacks against the reference code (Croce & Hein's ``pyautoattack``, norm "L1") on
the same model and images: FAB-L1 (FAB-T, 100 steps, 9 targets), Square-L1 and the whole l1
AutoAttack (standard version: l1-APGD-CE with 5 restarts, l1-APGD-T, FAB-T, Square; 100 steps,
5,000 queries). Model: ``advx.testing.digits_model()`` (a seeded digits CNN, 97.5 % clean on these
images); images: the first ``--n`` digits test images. It measures strength, not speed (the number
of samples each library leaves robust, and on which samples they disagree): no time is recorded.
Printed: a table; written: JSON.

    python benchmarks/l1_reference.py --out benchmarks/results/l1_reference_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))


def robust(model, x_adv, y) -> np.ndarray:
    with torch.no_grad():
        return (model(x_adv).argmax(1) == y).numpy()


def main() -> None:
    import advx
    from advx.testing import digits_model
    from pyautoattack import AutoAttack
    from pyautoattack.fab_pt import FABAttack_PT
    from pyautoattack.square import SquareAttack

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=200, help="digits test images (FAB and Square)")
    ap.add_argument("--n-autoattack", type=int, default=100, help="images for the whole ensemble")
    ap.add_argument("--eps", type=float, nargs="+", default=[1.0, 2.0, 3.0])
    ap.add_argument("--queries", type=int, default=1000, help="Square-L1 queries when run alone")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    torch.manual_seed(0)
    model, data = digits_model()
    x, y = data.x_test[: args.n].clone(), data.y_test[: args.n].clone()
    rows = []

    def row(attack, eps, n, ours, ref):
        both = {"attack": attack, "eps": eps, "n": n, "clean": int(robust(model, x[:n], y[:n]).sum()),
                "advx": int(ours.sum()), "reference": int(ref.sum()),
                "robust only under advx": np.nonzero(ours & ~ref)[0].tolist(),
                "robust only under the reference": np.nonzero(ref & ~ours)[0].tolist()}
        rows.append(both)
        print(f"{attack:<22} eps {eps:<4} n {n:<4} robust: advx {both['advx']:>4}  reference {both['reference']:>4}  "
              f"(only advx {len(both['robust only under advx'])}, only reference "
              f"{len(both['robust only under the reference'])})", flush=True)

    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    for eps in args.eps:
        ours = advx.create("attack", "fab", norm="l1", eps=eps)(model, x, y, generator=g())
        ref = FABAttack_PT(model, norm="L1", n_iter=100, eps=eps, targeted=True, n_target_classes=9, seed=0,
                           device="cpu").perturb(x, y)
        row("FAB-T (l1)", eps, args.n, robust(model, ours, y), robust(model, ref, y))
        ours = advx.create("attack", "square", norm="l1", eps=eps, queries=args.queries)(model, x, y, generator=g())
        ref = SquareAttack(model, norm="L1", n_queries=args.queries, eps=eps, seed=0, device="cpu").perturb(x, y)
        row(f"Square-{args.queries} (l1)", eps, args.n, robust(model, ours, y), robust(model, ref, y))
    m = args.n_autoattack
    for eps in args.eps[:2]:
        ours = advx.create("attack", "autoattack", norm="l1", eps=eps)(model, x[:m], y[:m], generator=g())
        adversary = AutoAttack(model, norm="L1", eps=eps, version="standard", device="cpu", seed=0)
        adversary.verbose = False
        ref = adversary.run_standard_evaluation(x[:m], y[:m], batch_size=m)
        ref = ref[0] if isinstance(ref, tuple) else ref
        row("AutoAttack (l1)", eps, m, robust(model, ours, y[:m]), robust(model, ref, y[:m]))
    if args.out:
        import pyautoattack

        from advx.evaluation.experiment import machine, source_commit

        report = {"command": "python " + " ".join(sys.argv), "model": "advx.testing.digits_model()",
                  "images": f"digits test images 0..{args.n - 1}", "rows": rows,
                  "versions": {"torch": torch.__version__, "pyautoattack": getattr(pyautoattack, "__version__", "0.2.0"),
                               "advx commit": source_commit()},
                  "machine": machine()}
        args.out.write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
