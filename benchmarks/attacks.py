"""Attack speed and strength: advx vs torchattacks vs ART vs the physical limit.

Same model, data and budget for every library. The physical limit of a K-step gradient attack is
the time of K forward+backward passes of the model on the batch (no attack bookkeeping at all).
Prints a table and writes JSON. Examples:

    python benchmarks/attacks.py                                   # digits CNN, CPU
    python benchmarks/attacks.py --model resnet18 --random --n 256 --batch 256 --device cuda
    # issue 11's GPU table: PGD-10 and APGD-100 on ResNet-18, 10k images, batch 512, fp32 then bf16
    python benchmarks/attacks.py --model resnet18 --random --n 10000 --batch 512 --device cuda \
        --attacks PGD-10,APGD-100 --precision bf16 --out bench_results/gpu_bf16.json

Columns: robust accuracy, mean perturbation, seconds, images/second, ratio to the limit and to
each peer, forward and backward passes per image (counted by a hook) and (CUDA) peak memory. Each
attack is timed ``--pairs`` times (5), the limit measured right before each timing and the peers
right after; each timing repeats the call until it lasts ``--min-seconds`` (0.5 s: one FGSM call
on 256 digits takes 12 ms, too short to time once on a noisy machine), every library the same
number of calls; times and ratios are the medians, with the range of ours/limit beside them. ART
runs at the same batch size unless --art-default-batch (ART's own default, 32 for PGD) is given.
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
from torch import nn

import advx
from advx.streams import SampleStreams
from advx.evaluation.counting import CountingModel


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device, reps=1):
    """(output of the last call, seconds per call) over ``reps`` calls back to back."""
    sync(device)
    t = time.perf_counter()
    for _ in range(reps):
        out = fn()
    sync(device)
    return out, (time.perf_counter() - t) / reps


def measured(fn, device, precision, reps=1):
    """(output, seconds per call, peak CUDA MiB or None), under bf16 autocast when asked. Steady
    state: the allocator's cache is kept (emptying it before a ~1 s timing charged that call with
    re-growing the pool, cudaMalloc calls that synchronise the device, which a long run pays once)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
        out, seconds = timed(fn, device, reps)
    peak = torch.cuda.max_memory_allocated(device) / 2 ** 20 if device.type == "cuda" else None
    return out, seconds, peak


def physical_limit(model, x, y, passes, batch, device, reps=1):
    """K forward+backward passes w.r.t. the input, nothing else (seconds per call of K passes)."""
    xg = x.clone()

    def run():
        for _ in range(passes):
            for i in range(0, len(x), batch):
                xi = xg[i:i + batch].detach().requires_grad_(True)
                loss = nn.functional.cross_entropy(model(xi), y[i:i + batch])
                torch.autograd.grad(loss, xi)
    return timed(run, device, reps)[1]


def batched(fn, x, y, batch):
    return torch.cat([fn(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)])


def cases(eps, quick):
    steps_apgd = 20 if quick else 100
    return {
        "FGSM": dict(ours=("fgsm", dict(eps=eps)), passes=1,
                     ta=lambda ta, m: ta.FGSM(m, eps=eps),
                     art=lambda ev, c: ev.FastGradientMethod(c, eps=eps)),
        "PGD-10": dict(ours=("pgd", dict(eps=eps, alpha=eps / 4, steps=10)), passes=10,
                       ta=lambda ta, m: ta.PGD(m, eps=eps, alpha=eps / 4, steps=10, random_start=True),
                       art=lambda ev, c: ev.ProjectedGradientDescent(c, eps=eps, eps_step=eps / 4, max_iter=10,
                                                                      num_random_init=1, verbose=False)),
        # APGD's limit is counted: steps + 1 forward passes, steps backward passes (the last point is only evaluated)
        f"APGD-{steps_apgd}": dict(ours=("apgd", dict(eps=eps, steps=steps_apgd)), passes=None,
                                   ta=lambda ta, m: ta.APGD(m, norm="Linf", eps=eps, steps=steps_apgd, n_restarts=1),
                                   art=lambda ev, c: ev.AutoProjectedGradientDescent(
                                       c, eps=eps, eps_step=2 * eps, max_iter=steps_apgd, nb_random_init=1,
                                       verbose=False)),
        "CW-100": dict(ours=("cw", dict(c=1.0, binary_search_steps=1, steps=100, lr=0.05)), passes=100,
                       ta=lambda ta, m: ta.CW(m, c=1.0, steps=100, lr=0.01),
                       art=lambda ev, c: ev.CarliniL2Method(c, initial_const=1.0, binary_search_steps=1, max_iter=100,
                                                            learning_rate=0.01, verbose=False)),
        "DeepFool-50": dict(ours=("deepfool", dict(steps=50)), passes=None,
                            ta=lambda ta, m: ta.DeepFool(m, steps=50, overshoot=0.02),
                            art=lambda ev, c: ev.DeepFool(c, max_iter=50, epsilon=0.02, nb_grads=10, verbose=False)),
        # AutoAttack's members and the ensemble. They attack only the samples still robust, so
        # their limit is the passes they actually made (counted by a hook), not a fixed K.
        f"APGD-T-{steps_apgd}": dict(ours=("apgd-t", dict(eps=eps, steps=steps_apgd)), passes=None,
                                     ta=lambda ta, m: ta.APGDT(m, norm="Linf", eps=eps, steps=steps_apgd, n_restarts=1,
                                                               n_classes=10, seed=0),
                                     art=None),
        f"FAB-T-{steps_apgd}": dict(ours=("fab", dict(eps=eps, steps=steps_apgd)), passes=None,
                                    ta=lambda ta, m: ta.FAB(m, norm="Linf", eps=eps, steps=steps_apgd, n_restarts=1,
                                                            multi_targeted=True, n_classes=10, seed=0),
                                    art=None),
        "Square-5000": dict(ours=("square", dict(eps=eps, queries=5000)), passes=None,
                            ta=lambda ta, m: ta.Square(m, norm="Linf", eps=eps, n_queries=5000, n_restarts=1,
                                                       p_init=0.8, loss="margin", resc_schedule=True, seed=0),
                            art=lambda ev, c: ev.SquareAttack(c, norm=np.inf, eps=eps, max_iter=5000, p_init=0.8,
                                                              nb_restarts=1, verbose=False)),
        # torchattacks' AutoAttack runs 10 iterations per gradient member (its issue #196); same here
        "AutoAttack-10it": dict(ours=("autoattack", dict(eps=eps, steps=10)), passes=None,
                                ta=lambda ta, m: ta.AutoAttack(m, norm="Linf", eps=eps, version="standard",
                                                               n_classes=10, seed=0),
                                art=None),
        "AutoAttack-100it": dict(ours=("autoattack", dict(eps=eps, steps=100)), passes=None, ta=None, art=None),
    }


def per_sample_costs(model, x, y, batch, device, repeats=3):
    """Seconds per sample of one forward, and of one forward+backward w.r.t. the input (median)."""
    fwd, fb = [], []
    for _ in range(repeats):
        with torch.no_grad():
            fwd.append(timed(lambda: batched(lambda a, b: model(a), x, y, batch), device)[1] / len(x))
        fb.append(physical_limit(model, x, y, 1, batch, device) / len(x))
    return float(np.median(fwd)), float(np.median(fb))


def counted_passes(model, atk, x, y, batch):
    """(forward rows, backward rows) one call of the attack runs, counted by a hook: the work it
    chose to do (attacks that drop finished samples run fewer than K full passes)."""
    counter = CountingModel(model)
    g = torch.Generator().manual_seed(0)
    batched(lambda a, b: atk(counter, a, b, generator=g), x, y, batch)
    return counter.forward_rows, counter.backward_rows


def table_value(v):
    """Rounded for the README: three decimals below 10 (norms, ratios, seconds), one above."""
    return round(v, 3 if abs(v) < 10 else 1) if isinstance(v, float) else v


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", default="digits-cnn")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--n", type=int, default=512)
    ap.add_argument("--batch", type=int, default=512)
    ap.add_argument("--eps", type=float, default=0.1)
    ap.add_argument("--random", action="store_true", help="random inputs and an untrained model (timing only)")
    ap.add_argument("--skip", default="", help="comma list of libraries or attacks to skip, e.g. art,CW-100")
    ap.add_argument("--quick", action="store_true", help="APGD-20 instead of APGD-100")
    ap.add_argument("--attacks", default="", help="comma list of the attacks to run (default: all)")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32", help="bf16 autocast for every library")
    ap.add_argument("--channels-last", action="store_true", help="model and inputs in channels_last")
    ap.add_argument("--art-default-batch", action="store_true", help="run ART at its own default batch size")
    ap.add_argument("--pairs", type=int, default=5, help="timings per attack (limit, ours, peers in turn); medians")
    ap.add_argument("--min-seconds", type=float, default=0.5,
                    help="each timing repeats the call until it lasts about this long (fast attacks are noisy)")
    ap.add_argument("--out", default="bench_results/attacks.json")
    args = ap.parse_args()
    device = torch.device(args.device)
    skip = set(filter(None, args.skip.split(",")))
    torch.manual_seed(0)
    if args.random:
        model = advx.create("model", args.model).build(10, 3).to(device).eval()
        x = torch.rand(args.n, 3, 32, 32, device=device)
        y = torch.randint(0, 10, (args.n,), device=device)
        shape = (3, 32, 32)
    else:
        from advx.testing import digits_model

        model, data = digits_model()
        model = model.to(device).eval()
        x, y = data.x_test[: args.n].to(device), data.y_test[: args.n].to(device)
        shape = (1, 8, 8)
    for p in model.parameters():
        p.requires_grad_(False)
    if args.channels_last:
        model, x = model.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    only = set(filter(None, args.attacks.split(",")))
    # warm-up: the first pass pays for allocator growth and kernel selection; charge it to nobody
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
        physical_limit(model, x[:args.batch], y[:args.batch], 1, args.batch, device)

    def acc(xa):
        with torch.no_grad():
            return 100.0 * float((batched(lambda a, b: model(a).argmax(1), xa, y, args.batch) == y).float().mean())

    def prepare(c):
        """Once per attack: calls per timing (enough of ours to last ``--min-seconds``; every library
        and the limit get the same number) and the forward and backward rows our attack runs,
        counted by a hook (the same every call: the generator is reseeded)."""
        name, params = c["ours"]
        atk = advx.create("attack", name, **params)
        g = torch.Generator().manual_seed(0)
        once = measured(lambda: batched(lambda a, b: atk(model, a, b, generator=g), x, y, args.batch), device,
                        args.precision)[1]
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            counts = counted_passes(model, atk, x, y, args.batch)
        return max(1, int(np.ceil(args.min_seconds / max(once, 1e-6)))), counts

    def one_pair(label, c, reps, counts):
        """One timing of each library on this attack, the limit measured right before ours; each
        timing is ``reps`` calls back to back (seconds are per call)."""
        row = {"attack": label, "precision": args.precision, "reps": reps}
        row["fwd_per_img"], row["bwd_per_img"] = counts[0] / args.n, counts[1] / args.n
        name, params = c["ours"]
        atk = advx.create("attack", name, **params)
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=args.precision == "bf16"):
            if c["passes"]:
                row["limit_s"] = physical_limit(model, x, y, c["passes"], args.batch, device, reps)
            elif name != "deepfool":  # DeepFool's passes are over (candidates x N) batches: no per-sample unit
                fwd, fb = per_sample_costs(model, x, y, args.batch, device)
                row["limit_s"] = (counts[0] - counts[1]) * fwd + counts[1] * fb

        def ours():  # the evaluator's per-sample streams, drawn on the device: the same start every call
            starts = iter(range(0, args.n, args.batch))

            def call(a, b):
                i = next(starts)
                return atk(model, a, b, generator=SampleStreams.for_rows(0, torch.arange(i, i + len(a), device=device)))
            return batched(call, x, y, args.batch)
        xa, row["ours_s"], row["ours_mib"] = measured(ours, device, args.precision, reps)
        row["ours_img_s"] = args.n / row["ours_s"]
        row["ours_acc"] = acc(xa)
        d = (xa - x).flatten(1)
        row["ours_linf"], row["ours_l2"] = float(d.abs().amax(1).mean()), float(d.norm(dim=1).mean())
        if "limit_s" in row:
            row["ours_vs_limit"] = row["ours_s"] / row["limit_s"]
        if "torchattacks" not in skip and c["ta"] is not None:
            import torchattacks

            ta = c["ta"](torchattacks, model)
            xa, row["ta_s"], row["ta_mib"] = measured(lambda: batched(lambda a, b: ta(a, b), x, y, args.batch), device,
                                                      args.precision, reps)
            row["ta_acc"] = acc(xa)
            row["ta_vs_ours"] = row["ta_s"] / row["ours_s"]
        if "art" not in skip and c["art"] is not None:
            from art.attacks import evasion
            from art.estimators.classification import PyTorchClassifier

            clf = PyTorchClassifier(model=model, loss=nn.CrossEntropyLoss(), input_shape=shape, nb_classes=10,
                                    clip_values=(0.0, 1.0), device_type="gpu" if device.type == "cuda" else "cpu")
            art_atk = c["art"](evasion, clf)
            if hasattr(art_atk, "batch_size") and not args.art_default_batch:
                art_atk.batch_size = args.batch
            row["art_batch"] = getattr(art_atk, "batch_size", None)
            xn = x.cpu().numpy().astype(np.float32)
            # the true labels, as the other libraries get (without y ART attacks its own predictions)
            yn = np.eye(10, dtype=np.float32)[y.cpu().numpy()]
            adv, row["art_s"], row["art_mib"] = measured(lambda: art_atk.generate(x=xn, y=yn), device, args.precision,
                                                         reps)
            row["art_acc"] = acc(torch.from_numpy(adv).to(device))
            row["art_vs_ours"] = row["art_s"] / row["ours_s"]
        return row

    rows, all_pairs = [], []
    for label, c in cases(args.eps, args.quick).items():
        if label in skip or (only and label not in only):
            continue
        reps, counts = prepare(c)
        pairs = [one_pair(label, c, reps, counts) for _ in range(args.pairs)]  # the machine is noisy: the median pair
        row = dict(pairs[0])
        for k, v in pairs[0].items():
            if isinstance(v, float) and (k.endswith("_s") or "_vs_" in k or k.endswith("img_s")):
                row[k] = float(np.median([p[k] for p in pairs]))
        if "ours_vs_limit" in row:
            row["ours_vs_limit_range"] = f"{min(p['ours_vs_limit'] for p in pairs):.2f}-" \
                                         f"{max(p['ours_vs_limit'] for p in pairs):.2f}"
        rows.append(row)
        all_pairs.append(pairs)
        print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)

    cols = [("attack", "attack"), ("ours_acc", "acc% ours"), ("ta_acc", "acc% TA"), ("art_acc", "acc% ART"),
            ("ours_linf", "linf"), ("ours_l2", "l2"), ("ours_s", "s ours"), ("ours_img_s", "img/s ours"),
            ("limit_s", "s limit"), ("ours_vs_limit", "ours/limit"), ("ours_vs_limit_range", "ours/limit range"),
            ("ta_vs_ours", "TA/ours"),
            ("art_vs_ours", "ART/ours"), ("fwd_per_img", "fwd/img"), ("bwd_per_img", "bwd/img")]
    if device.type == "cuda":
        cols += [("ours_mib", "MiB ours"), ("ta_mib", "MiB TA"), ("art_mib", "MiB ART")]
    fmt = lambda v: "—" if v is None else (f"{v:.3f}" if isinstance(v, float) else str(v))  # noqa: E731
    print("\n| " + " | ".join(h for _, h in cols) + " |\n|" + "---|" * len(cols))
    for r in rows:
        print("| " + " | ".join(fmt(r.get(k)) for k, _ in cols) + " |")
    meta = {"model": args.model, "device": str(device), "n": args.n, "batch": args.batch, "eps": args.eps,
            "pairs": args.pairs, "min_seconds": args.min_seconds,
            "random_inputs": args.random, "precision": args.precision, "channels_last": args.channels_last,
            "art_batch": "default" if args.art_default_batch else args.batch, "torch": torch.__version__, "cpu": platform.processor() or platform.machine(),
            "threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None}
    meta["command"] = "python benchmarks/attacks.py " + " ".join(sys.argv[1:])
    meta["date"] = time.strftime("%Y-%m-%d")
    table = {"title": f"attacks on {args.model}, n={args.n}, eps={args.eps}, {device} ({meta['threads']} threads)",
             "columns": [h for _, h in cols],
             "rows": [[table_value(r.get(k)) for k, _ in cols] for r in rows]}
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps({"meta": meta, "rows": rows, "pairs": all_pairs, "table": table}, indent=2))
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
