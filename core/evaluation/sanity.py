"""AutoAttack-style sanity checks: randomness, dead gradients, signs of gradient masking, and
threat models that disagree in the direction a weak attack would (Carlini et al., "On Evaluating
Adversarial Robustness", 2019, Sections 4-5; Croce & Hein, ICML 2020, Section 5 and their
``checks.py``)."""

from __future__ import annotations

import json
import math
from typing import Any

import torch
from torch import nn

import numpy as np



def mcnemar_z(a: np.ndarray, b: np.ndarray) -> tuple[int, int, float]:
    """Paired comparison of two per-sample ``correct`` arrays: (samples only ``a`` gets right,
    samples only ``b`` gets right, z). z > 2 says ``a`` is higher beyond sampling noise."""
    only_a, only_b = int((a & ~b).sum()), int((b & ~a).sum())
    z = (only_a - only_b) / math.sqrt(only_a + only_b) if only_a + only_b else 0.0
    return only_a, only_b, z


def _noise(z: float) -> str:
    return f"beyond sampling noise, McNemar z = {z:.1f}" if z > 2 else f"within sampling noise, McNemar z = {z:.1f}"


class SanityLog:
    """Collects warnings (printed by ``advx run``, stored in the run file's ``warnings``)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._checked: set[tuple[str, str]] = set()

    def warn(self, msg: str) -> None:
        if msg not in self.messages:
            self.messages.append(msg)

    def check_cell(self, cell: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast: Any, *,
                   modes: tuple[str, ...] = (), eot: int = 1) -> dict[str, Any]:
        """Checks on one (trained model, defence) — ``cell`` is its planned clean cell, ``model``
        the pipeline, ``eot`` the most draws any attack on it averages per gradient — and the facts
        they found, for the store: ``unstable`` (predictions changed between two identical
        evaluations) and ``zero_gradient`` (the fraction of samples whose adaptive input gradient is
        all zero)."""
        key = (cell.cell.train, cell.cell.defense)
        if key in self._checked:
            return {}
        self._checked.add(key)
        from .threat_models import Adaptive, BlackBox, input_gradient

        label = f"[{cell.cell.train}/{cell.cell.defense}]"
        x, y = x[:64], y[:64]
        facts: dict[str, Any] = {}
        with torch.no_grad(), autocast:
            o1, o2 = model(x).float(), model(x).float()
        facts["unstable"] = outputs_change(o1, o2)
        facts["probability_outputs"] = probabilities(o1)
        d = cell.defense
        if (d.randomized or facts["unstable"]) and eot <= 1:
            why = "randomized defence" if d.randomized else "a randomized step, or a layer left in training mode " \
                                                             "such as dropout"
            self.warn(f"{label} outputs change between two identical calls ({why}): attack it adaptively "
                      "with EOT (evaluate.modes = ['adaptive'], eot > 1)")
        if facts["probability_outputs"]:
            self.warn(f"{label} the outputs are probabilities (every row in [0, 1], summing to 1), not logits: "
                      "cross-entropy and DLR attacks lose their gradient on a saturated softmax and overstate "
                      "robustness; return the logits (drop the final softmax)")
        missing = [m for m in (Adaptive.name, BlackBox.name) if m not in modes]
        if missing and any(getattr(t, "optimizes_input", False) for t in d.chain):
            self.warn(f"{label} the defence optimises its input at inference time, which AutoAttack's checks "
                      f"flag; its numbers need the {' and '.join(missing)} threat model"
                      f"{'s' if len(missing) > 1 else ''} too (evaluate.modes; black-box runs gradient-free "
                      "attacks such as square)")
        grad, why = input_gradient(model, x, y)  # the gradient an adaptive attack follows: BPDA, attack draws
        if grad is None:
            self.warn(f"{label} no input gradient through the defence ({why}); declare its non-differentiable "
                      "steps (differentiable = False, for BPDA) or use a gradient-free attack")
            return facts
        if not torch.isfinite(grad).all():
            self.warn(f"{label} input gradients are NaN: gradient-based attacks are meaningless here; use BPDA "
                      "or a gradient-free attack")
            return facts
        zero = (grad.flatten(1).abs().amax(1) == 0).float().mean().item()
        facts["zero_gradient"] = zero
        if zero > 0.5:
            self.warn(f"{label} {zero:.0%} of samples have an all-zero input gradient (gradient masking?)")
        return facts

    def check_monotone(self, results: Any, cfg: Any) -> None:
        """A stronger attack (larger budget, more steps, restarts or queries) must not leave
        *higher* accuracy. Compares attacks of one name whose parameters differ in exactly one of
        those, swept or written as separate [[attack]] tables."""
        groups: dict[tuple[str, str, str], list[tuple[float, str]]] = {}
        for a in cfg.attacks:
            for param in STRENGTH:
                if param not in a.component.params:
                    continue
                try:
                    v = float(eval_number(a.component.params[param]))
                except ValueError:
                    continue
                rest = {k: w for k, w in a.component.params.items() if k != param}
                key = (a.component.name, param, json.dumps([rest, a.target], sort_keys=True, default=str))
                groups.setdefault(key, []).append((v, a.label))
        for (name, param, _), pts in groups.items():
            if len(pts) < 2:
                continue
            pts.sort()
            for t in results.labels("train"):
                for d in results.labels("defense"):
                    for mode in results.modes():
                        accs = [(v, r.accuracy) for v, lab in pts if (r := results.get(t, d, lab, mode)) is not None]
                        for (v1, a1), (v2, a2) in zip(accs, accs[1:]):
                            n = len(results.test.get("label", [])) or 1
                            tol = 100 * 2 * math.sqrt(0.25 / n)
                            if a2 > a1 + tol:
                                self.warn(f"[{t}/{d}/{mode}] {name}: accuracy rises from {a1:.1f}% to {a2:.1f}% when "
                                          f"{param} grows {v1:g} -> {v2:g}: a sign of gradient masking or a weak attack")

    def check_threat_models(self, results: Any, gradient_free: frozenset[str] | set[str]) -> None:
        """Warn where one threat model trails a weaker one on the same samples.

        - a cell that leaves more samples robust than the same attack in a threat model it is
          stronger than (adaptive above oblivious or transfer: the attack on the whole pipeline
          failed where crafting on the undefended model succeeded), with both numbers and whether
          the gap is beyond sampling noise (paired McNemar test); ``advx audit`` fails it;
        - a gradient-free attack breaking more samples than every gradient attack together
          (beyond noise): gradient masking, the white-box numbers are not to be trusted.
        Every cell keeps its own number; the headline worst case counts every cell either way.
        """
        for c, o, a_ok, o_ok in results.trailing():
            _, _, z = mcnemar_z(a_ok, o_ok)
            self.warn(f"[{c.cell.train}/{c.cell.defense}] {c.cell.attack}: {c.cell.mode} leaves {100 * a_ok.mean():.1f}% "
                      f"robust, above {o.cell.mode} {100 * o_ok.mean():.1f}% on the same {len(a_ok)} samples "
                      f"({_noise(z)}): the {c.cell.mode} attack failed where the {o.cell.mode} one succeeded — "
                      f"strengthen it (more steps, EOT draws, BPDA); the worst case counts both")
        for c, member, broken in square_breaks(results):
            self.warn(f"[{c.cell.train}/{c.cell.defense}] {c.cell.attack} ({c.cell.mode}): its gradient-free "
                      f"member {member} broke {broken} samples ({100 * broken / len(c.arrays['correct']):.1f}%) "
                      "that the gradient members before it left robust; AutoAttack's own check calls such an evaluation "
                      "unreliable (gradient masking): run Square with more queries, or an adaptive attack")
        for t in results.labels("train"):
            for d in results.labels("defense"):
                white = [c for c in results.cells if (c.cell.train, c.cell.defense) == (t, d)
                         and c.cell.attack != "clean" and c.cell.attack not in gradient_free]
                black = [c for c in results.cells if (c.cell.train, c.cell.defense) == (t, d)
                         and c.cell.attack in gradient_free]
                if not white or not black or len({len(c.arrays["correct"]) for c in white + black}) != 1:
                    continue
                wb = np.logical_and.reduce([c.arrays["correct"].astype(bool) for c in white])
                for c in black:
                    bb = c.arrays["correct"].astype(bool)
                    only_wb, only_bb, z = mcnemar_z(wb, bb)
                    if z > 2:
                        self.warn(f"[{t}/{d}] gradient-free {c.cell.attack} ({c.cell.mode}) leaves {bb.mean() * 100:.1f}% "
                                  f"against {wb.mean() * 100:.1f}% for every gradient attack together ({only_wb} samples "
                                  f"broken only by it, McNemar z = {z:.1f}): gradient masking — the gradient-based "
                                  "numbers of this defence overstate its robustness")


def outputs_change(a: torch.Tensor, b: torch.Tensor, alpha: float = 1e-4) -> bool:
    """Two identical calls disagree: a prediction moved, or the L2-normalised outputs differ by
    more than ``alpha`` (the reference AutoAttack's ``check_randomized``)."""
    if (a.argmax(1) != b.argmax(1)).any():
        return True
    na = a / (a.flatten(1).norm(dim=1).view(-1, *[1] * (a.ndim - 1)) + 1e-10)
    nb = b / (b.flatten(1).norm(dim=1).view(-1, *[1] * (b.ndim - 1)) + 1e-10)
    return bool((na - nb).flatten(1).norm(dim=1).max() > alpha)


def probabilities(out: torch.Tensor, alpha: float = 1e-5) -> bool:
    """Outputs that look like a softmax: in [0, 1] and every row summing to 1 (the reference
    AutoAttack's ``check_range_output``)."""
    return bool(out.max() < 1 + alpha and out.min() > -alpha and ((out.sum(-1) - 1).abs() < alpha).all())


#: members of an ensemble that use no gradient; the reference warns when they break what the others left
GRADIENT_FREE_MEMBERS = ("square",)
#: the reference's tolerance: a gradient-free member breaking more than this fraction is flagged
SQUARE_ALPHA = 0.002


def square_breaks(results: Any) -> list[tuple[Any, str, int]]:
    """(cell, member, samples) for each finished ensemble cell whose gradient-free member broke
    more than 0.2 % of its samples, all left robust by the gradient members before it (the reference AutoAttack's
    ``check_square_sr``), read from the stored ``broken_by`` record."""
    found = []
    for c in results.cells:
        if not c.members or "broken_by" not in c.arrays or not c.finished:
            continue
        codes = np.asarray(c.arrays["broken_by"]).astype(int)
        for k, m in enumerate(c.members):
            broken = int((codes == k).sum())
            if m in GRADIENT_FREE_MEMBERS and broken > SQUARE_ALPHA * max(len(codes), 1):
                found.append((c, m, broken))
    return found


#: attack parameters where a larger value must not make the attack weaker
STRENGTH = ("eps", "steps", "restarts", "queries", "max_iter", "iterations")


def eval_number(v: Any) -> float:
    from advx.values import parse_number

    try:
        return parse_number(v, "sweep")
    except Exception as exc:  # noqa: BLE001 - any unparsable value is simply skipped
        raise ValueError(str(exc)) from None
