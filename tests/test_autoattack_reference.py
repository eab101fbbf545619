"""advx's AutoAttack against the reference code (Croce & Hein's own, `pyautoattack` 0.2.0) on the
reference's CIFAR-10 ResNet-18 and the 20 real foolbox CIFAR-10 images (the benchmark adds their mirror images).

The suite runs both at a shrunk budget (2 steps per gradient member, 1 target class, Square 10
queries, the same on both sides) so it fits the CI time; the full standard budget (100 steps, 5,000 queries) is
`benchmarks/autoattack_reference.py`, stored in benchmarks/results/autoattack_reference_cpu.json
and held to the same rule by the last test here."""

import json
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
import autoattack_reference as ref  # noqa: E402


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    dev = torch.device("cpu")
    net = ref.reference_network(dev)
    x, y = ref.images(20)  # the 20 real images (the benchmark adds their mirrors)
    return net, x, y, dev


# one eps in the suite (the smaller: more samples reach the later members); both eps at the full
# budget are held to the same rule by the last test, from the stored benchmark
@pytest.mark.parametrize("eps", ["1/255"])
def test_robust_accuracy_at_most_one_sample_above_the_reference(setup, eps):
    net, x, y, dev = setup
    e = float(eps.split("/")[0]) / 255
    _, ref_flags, _ = ref.run_reference(net, x, y, e, len(y), dev, 2, 10, targets=1)
    _, our_flags, breakdown, _, _ = ref.run_advx(net, x, y, e, len(y), dev, 2, 10, targets=1)
    ref_flags, our_flags = ref_flags.astype(bool), our_flags.astype(bool)
    only_ours = np.nonzero(our_flags & ~ref_flags)[0].tolist()
    only_ref = np.nonzero(ref_flags & ~our_flags)[0].tolist()
    report = (f"eps {eps}: robust advx {our_flags.sum()} / reference {ref_flags.sum()} of {len(y)}; robust only "
              f"under advx: {only_ours}, only under the reference: {only_ref}; advx after each member: {breakdown}")
    print(report)  # the per-sample disagreement, shown with pytest -s
    assert our_flags.sum() <= ref_flags.sum() + 1, report
    with torch.no_grad():
        assert breakdown["clean"] == int((net(x).argmax(1) == y).sum())


def test_the_stored_standard_budget_comparison_holds_the_same_rule():
    report = json.loads((ROOT / "benchmarks/results/autoattack_reference_cpu.json").read_text())
    assert "AutoAttack standard, Linf, steps 100, Square queries 5000" in report["attack"]
    for row in report["rows"]:
        assert row["n"] == 40 and row["advx"]["robust"] <= row["reference"]["robust"] + 1, row["eps"]
        assert row["advx"]["seconds"] <= 1.1 * row["reference"]["seconds"], row["eps"]
