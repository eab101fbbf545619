"""AutoAttack's fast version against the standard one and the reference (issue #48, "done when").

On two networks — the PGD-trained Fashion-MNIST LeNet-5 of ``robust_autoattack.py`` (robust:
AutoAttack has work to do) and the reference's own CIFAR-10 ResNet-18 ``model_test.pt`` at 2/255 on
the 40 foolbox images — it runs the reference (``pyautoattack``, Croce & Hein's code), advx's
standard AutoAttack and advx's fast one (through ``advx.evaluate``, the call behind ``advx eval``)
and stores, for each: seconds, passes per image (one image through the model, forward or
backward; the reference's counted by a wrapper around its network, advx's by the per-sample
ledger), the robust count, the samples robust under only one of them, and the fast version's own
check (subsample size, misses, the bound on what it overstates)::

    python benchmarks/autoattack_fast.py --out benchmarks/results/autoattack_fast_cpu.json

Each network's libraries run in turn, one after another (nothing else running); the JSON is
written after every library, so a run cut short keeps what finished.
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
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
import autoattack_reference as ref  # noqa: E402
import robust_autoattack as robust  # noqa: E402


class PassCounter(nn.Module):
    """Counts the images a network carries forward and backward (the reference's passes)."""

    def __init__(self, net: nn.Module) -> None:
        super().__init__()
        self.net, self.forward_rows, self.backward_rows = net, 0, 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        self.forward_rows += len(x)
        if out.requires_grad:
            out.register_hook(self._count_backward)
        return out

    def _count_backward(self, grad: torch.Tensor) -> None:
        self.backward_rows += len(grad)


def run_reference(net, x, y, eps, batch) -> dict:
    counted = PassCounter(net).eval()
    t, flags, members = ref.run_reference(counted, x, y, eps, batch, torch.device("cpu"), 100, 5000)
    attacked = int(ref.robust_flags(net, x, y, batch).sum())
    return {"seconds": round(t, 2), "robust": int(flags.sum()), "flags": flags.astype(int).tolist(),
            "passes": counted.forward_rows + counted.backward_rows,
            "passes_per_image": round((counted.forward_rows + counted.backward_rows) / max(attacked, 1), 1),
            "member_seconds": members}


def run_advx(net, x, y, eps, batch, version: str) -> dict:
    import advx

    attack = {"name": "autoattack", "version": version}
    with tempfile.TemporaryDirectory() as d:
        t0 = time.perf_counter()
        res = advx.evaluate(net, (x, y), attack=attack, eps=eps, device="cpu", batch_size=batch,
                            out=Path(d) / "aa.h5")
        seconds = time.perf_counter() - t0
        cell = next(c for c in res.cells if c.cell.attack != "clean")
        order = np.argsort(cell.arrays["index"])
        a = {k: np.asarray(v)[order] for k, v in cell.arrays.items()}
    attacked = a["broken_by"] != -2
    passes = int(a["craft_forwards"].sum() + a["craft_backwards"].sum())
    members = list(cell.members)
    per_member = (a["member_forwards"] + a["member_backwards"])[attacked].sum(0) / max(int(attacked.sum()), 1)
    out = {"seconds": round(seconds, 2), "robust": int(a["correct"].sum()), "flags": a["correct"].astype(int).tolist(),
           "passes": passes, "passes_per_image": round(passes / max(int(attacked.sum()), 1), 1),
           "passes_per_image_by_member": {m: round(float(v), 1) for m, v in zip(members, per_member)},
           "unattributed_rows": int(cell.info.get("unattributed_forward_rows", 0))
           + int(cell.info.get("unattributed_backward_rows", 0))}
    if "check" in a:
        from advx.evaluation.verdict import binomial_upper

        checked, missed = int((a["check"] >= 0).sum()), int((a["check"] == 1).sum())
        check_passes = int(a["check_forwards"].sum() + a["check_backwards"].sum())
        out["check"] = {"checked": checked, "missed": missed,
                        "overstates_at_most_points": round(binomial_upper(missed, checked), 2) if checked else None,
                        "passes": check_passes,
                        "passes_per_image": round(check_passes / max(int(attacked.sum()), 1), 1)}
    return out


def network(name: str, args) -> dict:
    """The network, images, eps and batch of one benchmark row."""
    if name == "fmnist-lenet5-pgd-at":
        fm = argparse.Namespace(n=args.fmnist_n, eps=0.1, epochs=6, cache=args.cache)
        net, x, y, info = robust.robust_network(fm)  # trained on first use (about 11 minutes on 2 cores)
        return {"net": net, "x": x[:args.fmnist_n], "y": y[:args.fmnist_n], "eps": 0.1, "batch": 500, "info": info,
                "about": "LeNet-5, Fashion-MNIST, PGD-AT linf 0.1 (robust_autoattack.py), "
                         f"first {args.fmnist_n} test images, eps 0.1"}
    xc, yc = ref.images(40)
    return {"net": ref.reference_network(torch.device("cpu")), "x": xc, "y": yc, "eps": 2 / 255, "batch": 256,
            "about": "pyautoattack examples/model_test.pt (ResNet-18, standard training), "
                     "20 foolbox CIFAR-10 images + mirrors, eps 2/255"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fmnist-n", type=int, default=200)
    ap.add_argument("--cache", type=Path, default=Path("runs/cache"))
    ap.add_argument("--networks", nargs="+", default=["fmnist-lenet5-pgd-at", "model_test-cifar10"])
    ap.add_argument("--libraries", nargs="+", default=["fast", "standard", "reference"])
    ap.add_argument("--out", type=Path)
    ap.add_argument("--retable", type=Path, help="only rewrite the table of a stored report from its rows")
    args = ap.parse_args()
    if args.retable:
        report = json.loads(args.retable.read_text())
        report["table"] = table(report)
        args.retable.write_text(json.dumps(report, indent=1) + "\n")
        return
    torch.manual_seed(0)
    import advx

    report = {"command": "python benchmarks/autoattack_fast.py " + " ".join(sys.argv[1:]),
              "date": time.strftime("%Y-%m-%d %H:%M"),
              "attack": "AutoAttack, Linf: reference and advx standard (APGD-CE, APGD-T 9 targets, FAB-T, "
                        "Square 5000, 100 steps); advx fast (APGD-CE, APGD-T on MALT's 3 nearest targets, "
                        "100 steps; check: 10 % subsample, at least 20, standard ensemble)",
              "machine": {"device": "cpu", "cpu_threads": torch.get_num_threads(), "platform": platform.platform(),
                          "torch": torch.__version__, "advx": advx.__version__},
              "networks": {}}
    for name in args.networks:
        spec = network(name, args)
        row: dict = {"about": spec["about"], "n": len(spec["y"]), "eps": spec["eps"], **({"network_info": spec["info"]}
                                                                                        if "info" in spec else {})}
        report["networks"][name] = row
        for lib in args.libraries:
            if lib == "reference":
                row[lib] = run_reference(spec["net"], spec["x"], spec["y"], spec["eps"], spec["batch"])
            else:
                row[lib] = run_advx(spec["net"], spec["x"], spec["y"], spec["eps"], spec["batch"], lib)
            print(name, lib, {k: v for k, v in row[lib].items() if k != "flags"}, flush=True)
            summarise(row)
            report["table"] = table(report)
            if args.out:
                args.out.parent.mkdir(parents=True, exist_ok=True)
                args.out.write_text(json.dumps(report, indent=1) + "\n")
    print(json.dumps({n: {k: v for k, v in r.items() if k not in ("reference", "standard", "fast")}
                      for n, r in report["networks"].items()}, indent=1))


def table(report: dict) -> dict:
    """The README's table, derived from the stored rows (``--retable FILE`` rewrites it in place)."""
    rows = []
    for name, row in report["networks"].items():
        ref_row = row.get("reference")
        for lib in ("reference", "standard", "fast"):
            if lib not in row:
                continue
            r = row[lib]
            flags, ref_flags = np.array(r["flags"], bool), np.array(ref_row["flags"], bool) if ref_row else None
            check = r.get("check")
            rows.append([name, row["n"], lib, r["seconds"],
                         round(r["seconds"] / ref_row["seconds"], 3) if ref_row else None,
                         r["passes_per_image"], round(r["passes"] / ref_row["passes"], 3) if ref_row else None,
                         r["robust"],
                         None if ref_flags is None else int((flags & ~ref_flags).sum()),
                         None if ref_flags is None else int((ref_flags & ~flags).sum()),
                         None if check is None else f"{check['missed']} of {check['checked']}, "
                                                    f"≤ {check['overstates_at_most_points']} points"])
    return {"title": "AutoAttack fast and standard against the reference (CPU)",
            "columns": ["network", "images", "version", "seconds", "time / reference", "passes per image",
                        "passes / reference", "robust", "robust only here", "robust only under the reference",
                        "fast's check: missed, bound (95%)"], "rows": rows,
            "note": "passes: one image through the network, forward or backward, per sample attacked (correct on "
                    "clean input); the reference's counted around its network, advx's by the per-sample ledger; "
                    "fast's passes include its check"}


def summarise(row: dict) -> None:
    """Ratios to the reference and the samples robust under only one of each pair."""
    ref_row = row.get("reference")
    flags = {lib: np.array(row[lib]["flags"], bool) for lib in ("reference", "standard", "fast") if lib in row}
    row["comparison"] = {}
    for lib in ("standard", "fast"):
        if lib not in row or ref_row is None:
            continue
        row["comparison"][f"{lib}_vs_reference"] = {
            "time_ratio": round(row[lib]["seconds"] / ref_row["seconds"], 3),
            "passes_ratio": round(row[lib]["passes"] / ref_row["passes"], 3),
            "robust_only_under_" + lib: np.nonzero(flags[lib] & ~flags["reference"])[0].tolist(),
            "robust_only_under_reference": np.nonzero(flags["reference"] & ~flags[lib])[0].tolist()}
    if "fast" in flags and "standard" in flags:
        row["comparison"]["fast_vs_standard"] = {
            "passes_ratio": round(row["fast"]["passes"] / row["standard"]["passes"], 3),
            "robust_only_under_fast": np.nonzero(flags["fast"] & ~flags["standard"])[0].tolist(),
            "robust_only_under_standard": np.nonzero(flags["standard"] & ~flags["fast"])[0].tolist()}


if __name__ == "__main__":
    main()
