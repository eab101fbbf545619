"""advx's AutoAttack rand version against the reference (`pyautoattack` 0.2.0, Croce & Hein's own
code) on a randomized pipeline: the digits CNN (``advx.testing.digits_model``) behind Gaussian noise
(sigma 0.2), eps 0.1 linf, 100 test digits, APGD-CE + APGD-DLR with 100 steps and gradients
averaged over 20 draws on both sides. Both attack the same pipeline in its attack mode (each query
new draws); each side's points are scored over the same 20 fresh evaluation draws (robust samples
per draw, averaged). Each side runs with several attack seeds, since one run's count moves by a
sample or two with the attack's own randomness.

    python benchmarks/autoattack_rand_reference.py --out benchmarks/results/autoattack_rand_reference_cpu.json
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent


def setup(n: int, sigma: float):
    import advx
    from advx.defense import build_defended
    from advx.testing import digits_model

    model, data = digits_model()
    x, y = data.x_test[:n].float(), data.y_test[:n]
    noise = advx.create("inference_defense", "gaussian-noise", sigma=sigma)
    return build_defended(model, [noise], repeats=1, eot=1), x, y


def robust_over_draws(pipeline, x, y, draws: int) -> float:
    """Robust samples per fresh evaluation draw, averaged over ``draws`` draws (seeds no attack used)."""
    from advx.defense import reseed

    counts = []
    with torch.no_grad():
        for r in range(draws):
            reseed(pipeline, 10_000 + r)
            counts.append(int((pipeline(x).argmax(1) == y).sum()))
    return float(np.mean(counts))


def run_reference(pipeline, x, y, eps: float, steps: int, seed: int) -> torch.Tensor:
    from pyautoattack import AutoAttack

    from advx.defense import reseed, set_attacking

    reseed(pipeline, 1 + seed)
    set_attacking(pipeline, True)
    try:
        adversary = AutoAttack(pipeline, norm="Linf", eps=eps, version="rand", device="cpu", seed=seed)
        adversary.verbose = False
        adversary.apgd.n_iter = steps
        torch.manual_seed(seed)
        x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=len(x))
    finally:
        set_attacking(pipeline, False)
    return x_adv


def run_advx(pipeline, x, y, eps: float, steps: int, seed: int) -> torch.Tensor:
    import advx
    from advx.defense import reseed, set_attacking
    from advx.streams import SampleStreams

    reseed(pipeline, 101 + seed)
    set_attacking(pipeline, True)
    try:
        attack = advx.create("attack", "autoattack", version="rand", eps=eps, steps=steps)
        return attack(pipeline, x, y, generator=SampleStreams.for_rows(7 + seed, torch.arange(len(x))))
    finally:
        set_attacking(pipeline, False)


def compare(n: int = 100, eps: float = 0.1, sigma: float = 0.2, steps: int = 100, seeds: int = 3,
            draws: int = 20) -> dict:
    pipeline, x, y = setup(n, sigma)
    rows = []
    for seed in range(seeds):
        row = {"seed": seed}
        for side, run in (("reference", run_reference), ("advx", run_advx)):
            t0 = time.perf_counter()
            x_adv = run(pipeline, x, y, eps, steps, seed)
            seconds = time.perf_counter() - t0
            assert (x_adv - x).abs().max() <= eps + 1e-6
            row[side] = {"robust": robust_over_draws(pipeline, x_adv, y, draws), "seconds": round(seconds, 1)}
        rows.append(row)
        print(f"seed {seed}: reference {row['reference']['robust']:.2f} ({row['reference']['seconds']} s), "
              f"advx {row['advx']['robust']:.2f} ({row['advx']['seconds']} s)", flush=True)
    mean = {side: round(float(np.mean([r[side]["robust"] for r in rows])), 2) for side in ("reference", "advx")}
    return {"pipeline": f"digits-cnn behind gaussian-noise sigma {sigma}", "n": n, "eps": eps, "steps": steps,
            "eot": 20, "scored_over_draws": draws, "clean": robust_over_draws(pipeline, x, y, draws),
            "rows": rows, "mean": mean, "rule": "advx mean robust <= reference mean robust + 1",
            "kept": mean["advx"] <= mean["reference"] + 1}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--n", type=int, default=100)
    ap.add_argument("--out", type=Path)
    args = ap.parse_args(argv)
    report = compare(n=args.n, steps=args.steps, seeds=args.seeds)
    sys.path.insert(0, str(ROOT))
    from advx.evaluation.experiment import machine, source_commit

    report.update({"command": "python benchmarks/autoattack_rand_reference.py" + "".join(
        f" --{k} {v}" for k, v in (("steps", args.steps), ("seeds", args.seeds), ("n", args.n)))
        + (f" --out {args.out}" if args.out else ""),
        "machine": machine(), "advx commit": source_commit(), "torch": torch.__version__})
    print(f"mean over {args.seeds} attack seeds: reference {report['mean']['reference']:.2f}, "
          f"advx {report['mean']['advx']:.2f} robust of {args.n} (clean {report['clean']:.2f})")
    if args.out:
        args.out.write_text(json.dumps(report, indent=1) + "\n")
    return report


if __name__ == "__main__":
    main()
