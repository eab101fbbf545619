"""AutoAttack by advx against the reference code (Croce & Hein's ``pyautoattack``) and torchattacks.

Same network, images, eps and batch for all three: the reference's own CIFAR-10 ResNet-18
(``pyautoattack/examples/model_test.pt``, standard training), the 20 real CIFAR-10 test images of
foolbox's wheel (``benchmarks/data/cifar10_foolbox.npz``) with their mirror images (40), or
more with ``--n`` (random crops of the padded images and flips, seeded). Each library runs the
standard version (APGD-CE, APGD-T, FAB-T, Square-5000, 100 steps) once per eps, in turn; advx runs
through ``advx.evaluate`` — the call behind ``advx eval``, with its run file, clean check and
per-sample worst case — into a fresh file each time. Printed: a table; written: JSON with the
per-sample robust flags of each library and their disagreements.

    python benchmarks/autoattack_reference.py --out benchmarks/results/autoattack_reference_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

DATA = Path(__file__).parent / "data" / "cifar10_foolbox.npz"


def reference_network(device: torch.device) -> torch.nn.Module:
    """pyautoattack's example ResNet-18 with its shipped weights."""
    import pyautoattack
    from pyautoattack.examples.resnet import ResNet18

    net = ResNet18()
    path = Path(pyautoattack.__file__).parent / "examples" / "model_test.pt"
    net.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return net.to(device).eval()


def images(n: int, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The 20 foolbox images and their mirrors, then (n > 40) seeded crops of the 4-padded images
    with random flips, as CIFAR-10 training augments."""
    z = np.load(DATA)
    x = torch.from_numpy(z["x"]).permute(0, 3, 1, 2).float().contiguous() / 255
    y = torch.from_numpy(z["y"])
    x, y = torch.cat([x, x.flip(3)]), torch.cat([y, y])
    g = torch.Generator().manual_seed(seed)
    extra_x, extra_y = [], []
    while len(y) + sum(len(e) for e in extra_y) < n:
        i = torch.randint(0, 20, (1,), generator=g).item()
        dx, dy = torch.randint(0, 9, (2,), generator=g).tolist()
        img = torch.nn.functional.pad(x[i:i + 1], (4, 4, 4, 4), mode="reflect")[..., dy:dy + 32, dx:dx + 32]
        extra_x.append(img.flip(3) if torch.rand(1, generator=g).item() < 0.5 else img)
        extra_y.append(y[i:i + 1])
    if extra_x:
        x, y = torch.cat([x, *extra_x]), torch.cat([y, *extra_y])
    return x[:n], y[:n]


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_method(obj, name: str, label: str, seconds: dict, device: torch.device) -> None:
    """Wrap ``obj.name`` so each call adds its wall time (synchronised) to ``seconds[label]``."""
    inner = getattr(obj, name)

    def wrapper(*a, **k):
        sync(device)
        t = time.perf_counter()
        out = inner(*a, **k)
        sync(device)
        seconds[label] = round(seconds.get(label, 0.0) + time.perf_counter() - t, 3)
        return out
    setattr(obj, name, wrapper)


class TimedMember:
    """An advx AutoAttack member whose ``perturb`` calls are timed (benchmark only)."""

    def __init__(self, attack, label: str, seconds: dict, device: torch.device) -> None:
        self.attack, self.label, self.seconds, self.device = attack, label, seconds, device

    def perturb(self, *a, **k):
        sync(self.device)
        t = time.perf_counter()
        out = self.attack.perturb(*a, **k)
        sync(self.device)
        self.seconds[self.label] = round(self.seconds.get(self.label, 0.0) + time.perf_counter() - t, 3)
        return out


def robust_flags(net, x_adv, y, batch) -> np.ndarray:
    with torch.no_grad():
        pred = torch.cat([net(x_adv[i:i + batch]).argmax(1) for i in range(0, len(x_adv), batch)])
    return (pred == y).cpu().numpy()


def run_reference(net, x, y, eps, batch, device, steps, queries, targets=9):
    from pyautoattack import AutoAttack

    adversary = AutoAttack(net, norm="Linf", eps=eps, version="standard", device=device, seed=0)
    adversary.verbose = False
    for a in (adversary.apgd, adversary.apgd_targeted, adversary.fab):
        a.n_iter = steps
    adversary.apgd_targeted.n_target_classes = adversary.fab.n_target_classes = targets
    adversary.square.n_queries = queries
    seconds: dict[str, float] = {}
    for attr, label in (("apgd", "apgd-ce"), ("apgd_targeted", "apgd-t"), ("fab", "fab-t"), ("square", "square")):
        timed_method(getattr(adversary, attr), "perturb", label, seconds, device)
    sync(device)
    t0 = time.perf_counter()
    x_adv, _ = adversary.run_standard_evaluation(x, y, batch_size=batch)  # (adversarials, their predictions)
    sync(device)
    return time.perf_counter() - t0, robust_flags(net, x_adv, y, batch), seconds


def run_torchattacks(net, x, y, eps, batch, device, steps, queries, targets=9):
    import torchattacks

    atk = torchattacks.AutoAttack(net, norm="Linf", eps=eps, version="standard", n_classes=10, seed=0)
    for a in atk._autoattack.attacks:
        if hasattr(a, "steps"):
            a.steps = steps
        if hasattr(a, "n_queries"):
            a.n_queries = queries
        if hasattr(a, "n_target_classes"):
            a.n_target_classes = targets
    seconds: dict[str, float] = {}
    for a, label in zip(atk._autoattack.attacks, ("apgd-ce", "apgd-t", "fab-t", "square")):
        timed_method(a, "forward", label, seconds, device)
    sync(device)
    t0 = time.perf_counter()
    x_adv = torch.cat([atk(x[i:i + batch], y[i:i + batch]) for i in range(0, len(x), batch)])
    sync(device)
    return time.perf_counter() - t0, robust_flags(net, x_adv, y, batch), seconds


def run_advx(net, x, y, eps, batch, device, steps, queries, targets=9):
    attack = "autoattack" if (steps, queries, targets) == (100, 5000, 9) else {
        "name": "autoattack", "steps": steps, "queries": queries, "targets": targets}
    from advx_attacks.autoattack import AutoAttack

    seconds: dict[str, float] = {}
    plain = AutoAttack.member
    AutoAttack.member = lambda self, name: TimedMember(plain(self, name), name, seconds, device)
    try:
        return _run_advx(net, x, y, eps, batch, device, attack, seconds)
    finally:
        AutoAttack.member = plain


def _run_advx(net, x, y, eps, batch, device, attack, seconds):
    import advx

    with tempfile.TemporaryDirectory() as d:
        sync(device)
        t0 = time.perf_counter()
        res = advx.evaluate(net, (x.cpu(), y.cpu()), attack=attack, eps=eps, device=device.type, batch_size=batch,
                            out=Path(d) / "aa.h5")
        sync(device)
        time_total = time.perf_counter() - t0
        cell = next(c for c in res.cells if c.cell.attack != "clean")
        order = np.argsort(cell.arrays["index"])
        flags = cell.arrays["correct"][order]
        broken_by = cell.arrays.get("broken_by")
        members = json.loads(cell.info.get("members", "[]")) if isinstance(cell.info.get("members"), str) \
            else list(cell.info.get("members", []))
        counts = {"forwards": int(cell.info.get("forwards", 0)), "backwards": int(cell.info.get("backwards", 0))}
    breakdown = None
    if broken_by is not None:
        bb = broken_by[order]
        breakdown = {"clean": int((bb != -2).sum())}
        left = int((bb != -2).sum())
        for k, m in enumerate(members):
            left -= int((bb == k).sum())
            breakdown[f"after {m}"] = left
    return time_total, flags, breakdown, counts, seconds


def table(report: dict) -> dict:
    """The README's table, derived from the stored rows (``--retable FILE`` rewrites it in place)."""
    rows = []
    for row in report["rows"]:
        ref = row.get("reference")
        for lib in ("reference", "advx", "torchattacks"):
            if lib not in row:
                continue
            r = row[lib]
            ratio = round(r["seconds"] / ref["seconds"], 3) if ref else None
            members = r.get("after_each_member")
            timed = r.get("member_seconds")
            rows.append([row["eps"], row["n"], lib, r["seconds"], ", ".join(f"{t:.1f}" for t in r.get("rounds_seconds", [])) or None,
                         ratio, r["robust"], r["robust_accuracy"],
                         ", ".join(f"{k} {v:.1f}" for k, v in timed.items()) if timed else None,
                         ", ".join(f"{k.removeprefix('after ')} {v}" for k, v in members.items()) if members else None])
    return {"title": f"AutoAttack vs the reference: {report['attack']}; {report['machine']['device']}",
            "columns": ["eps", "images", "library", "seconds (median round)", "each round", "time / reference", "robust",
                        "robust accuracy (%)", "seconds per member", "robust after each member"], "rows": rows}


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=40, help="images (40: the 20 foolbox images and their mirrors)")
    ap.add_argument("--eps", nargs="+", default=["1/255", "2/255"])
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--steps", type=int, default=100, help="gradient members' iterations (100: the standard)")
    ap.add_argument("--queries", type=int, default=5000, help="Square's queries (5000: the standard)")
    ap.add_argument("--targets", type=int, default=9, help="APGD-T's and FAB-T's target classes (9: the standard)")
    ap.add_argument("--libraries", nargs="+", default=["reference", "advx", "torchattacks"])
    ap.add_argument("--rounds", type=int, default=1,
                    help="time the reference and advx this many times, interleaved; the median round is reported")
    ap.add_argument("--out", type=Path)
    ap.add_argument("--retable", type=Path, help="only rewrite the table of a stored report from its rows")
    args = ap.parse_args(argv)
    if args.retable:
        report = json.loads(args.retable.read_text())
        report["table"] = table(report)
        args.retable.write_text(json.dumps(report, indent=1))
        return report
    device = torch.device(args.device)
    torch.manual_seed(0)
    net = reference_network(device)
    x, y = images(args.n)
    x, y = x.to(device), y.to(device)
    clean = robust_flags(net, x, y, args.batch)
    xw = x[:args.batch].clone().requires_grad_(True)  # warm-up: kernels chosen before any library is timed
    torch.autograd.grad(torch.nn.functional.cross_entropy(net(xw), y[:args.batch]), xw)
    sync(device)
    runners = {"reference": run_reference, "torchattacks": run_torchattacks, "advx": run_advx}
    import advx

    rows: list[dict] = []
    report = {
        "command": "python " + " ".join([sys.argv[0], *(argv if argv is not None else sys.argv[1:])]),
        "network": "pyautoattack examples/model_test.pt (ResNet-18, CIFAR-10, standard training)",
        "data": f"{DATA.name}: 20 foolbox CIFAR-10 test images + mirrors" + (", + seeded crops/flips" if args.n > 40 else ""),
        "attack": f"AutoAttack standard, Linf, steps {args.steps}, Square queries {args.queries}, batch {args.batch}"
                  + (f", {args.targets} target classes" if args.targets != 9 else ""),
        "rounds": args.rounds,
        "date": time.strftime("%Y-%m-%d"),
        "machine": {"device": str(device) + (f" ({torch.cuda.get_device_name(device)})" if device.type == "cuda" else ""),
                    "cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__, "advx": advx.__version__},
        "rows": rows,
    }

    def save() -> None:  # after every library: a run cut short keeps what finished
        report["table"] = table(report)
        if args.out:
            args.out.parent.mkdir(parents=True, exist_ok=True)
            args.out.write_text(json.dumps(report, indent=1))

    for eps_text in args.eps:
        num, _, den = eps_text.partition("/")
        eps = float(num) / float(den or 1)
        row = {"eps": eps_text, "n": len(y), "clean_correct": int(clean.sum())}
        rows.append(row)
        timings: dict[str, list] = {}
        for r in range(args.rounds):  # libraries interleaved round by round: drift hits each alike
            for lib in args.libraries:
                if lib == "torchattacks" and r > 0:
                    continue  # a second opinion, timed once
                out = runners[lib](net, x, y, eps, args.batch, device, args.steps, args.queries, args.targets)
                seconds, flags = out[0], out[1]
                timings.setdefault(lib, []).append((seconds, out[-1]))
                runs = timings[lib]
                mid = sorted(runs, key=lambda t: t[0])[(len(runs) - 1) // 2]  # the median (lower) round
                row[lib] = {"seconds": round(mid[0], 2), "robust": int(flags.sum()),
                            "robust_accuracy": round(100 * float(flags.mean()), 2), "flags": flags.astype(int).tolist(),
                            "member_seconds": mid[1], "rounds_seconds": [round(t[0], 2) for t in runs]}
                if lib == "advx":
                    row[lib]["after_each_member"], row[lib]["passes"] = out[2], out[3]
                print(f"eps {eps_text}  {lib:<12} {seconds:8.2f} s  robust {int(flags.sum())}/{len(y)}  "
                      f"members {out[-1]}", flush=True)
                save()
        if "reference" in row and "advx" in row:
            ref, ours = np.array(row["reference"]["flags"]), np.array(row["advx"]["flags"])
            row["advx_over_reference_time"] = round(row["advx"]["seconds"] / row["reference"]["seconds"], 3)
            row["advx_minus_reference_robust"] = int(ours.sum() - ref.sum())
            row["robust_only_in_advx"] = np.nonzero(ours & ~ref.astype(bool))[0].tolist()
            row["robust_only_in_reference"] = np.nonzero(ref & ~ours.astype(bool))[0].tolist()
        save()
    print("\n| eps | n | library | seconds | robust | time / reference |\n|---|---|---|---|---|---|")
    for row in rows:
        for lib in args.libraries:
            ratio = row[lib]["seconds"] / row["reference"]["seconds"] if "reference" in row and lib in row else float("nan")
            if lib not in row:
                continue
            print(f"| {row['eps']} | {row['n']} | {lib} | {row[lib]['seconds']:.2f} | "
                  f"{row[lib]['robust']} ({row[lib]['robust_accuracy']:.2f} %) | {ratio:.2f} |")
    return report


if __name__ == "__main__":
    main()
