"""AutoAttack-style sanity checks: randomness, dead gradients, signs of gradient masking, and
threat models that disagree in the direction a weak attack would (Carlini et al., "On Evaluating
Adversarial Robustness", 2019, Sections 4-5; Croce & Hein, ICML 2020, Section 5 and their
``checks.py``)."""

from __future__ import annotations

import json
import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

import numpy as np

from advx.defense import DefendedClassifier, set_attacking


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

    def check_cell(self, cell: Any, model: nn.Module, attacked: nn.Module, x: torch.Tensor, y: torch.Tensor,
                   autocast: Any, *, attacked_with_eot: bool = False, modes: tuple[str, ...] = ()) -> None:
        """Checks on one (trained model, defence): ``model`` is the pipeline as evaluated, ``attacked``
        the one adaptive attacks differentiate (BPDA through non-differentiable steps, EOT draws)."""
        key = (cell.train, cell.defense)
        if key in self._checked:
            return
        self._checked.add(key)
        x, y = x[:64], y[:64]
        randomized = any(isinstance(m, DefendedClassifier) and m.randomized for m in model.modules())
        with torch.no_grad(), autocast:
            p1, p2 = model(x).argmax(1), model(x).argmax(1)
        if (randomized or bool((p1 != p2).any())) and not attacked_with_eot:
            self.warn(f"[{cell.train}/{cell.defense}] predictions change from run to run (randomized defence): "
                      "attack it adaptively with EOT (evaluate.modes = ['adaptive'], eot > 1)")
        missing = [m for m in ("adaptive", "black-box") if m not in modes]
        if missing and any(getattr(t, "optimizes_input", False) for m in model.modules()
                           if isinstance(m, DefendedClassifier) for t in m.transforms):
            self.warn(f"[{cell.train}/{cell.defense}] the defence optimises its input at inference time, which "
                      f"AutoAttack's checks flag; its numbers need the {' and '.join(missing)} threat model"
                      f"{'s' if len(missing) > 1 else ''} too (evaluate.modes; black-box runs gradient-free "
                      "attacks such as square)")
        # the gradient an adaptive attack would follow: BPDA and EOT switched on, as in the attack
        xg = x.clone().requires_grad_(True)
        set_attacking(attacked, True)
        try:
            with torch.enable_grad():
                loss = F.cross_entropy(attacked(xg).float(), y)
                (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
        except RuntimeError as exc:
            self.warn(f"[{cell.train}/{cell.defense}] no input gradient through the defence ({str(exc).splitlines()[0]}); "
                      "declare its non-differentiable steps (differentiable = False, for BPDA) or use a "
                      "gradient-free attack")
            return
        finally:
            set_attacking(attacked, False)
        if grad is None or not torch.isfinite(grad).all():
            self.warn(f"[{cell.train}/{cell.defense}] input gradients are missing or NaN: gradient-based attacks "
                      "are meaningless here; use BPDA or a gradient-free attack")
            return
        zero = (grad.flatten(1).abs().amax(1) == 0).float().mean().item()
        if zero > 0.5:
            self.warn(f"[{cell.train}/{cell.defense}] {zero:.0%} of samples have an all-zero input gradient "
                      "(gradient masking?)")

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
        """Warn where one threat model beats a stronger one on the same samples.

        - adaptive accuracy above oblivious or transfer accuracy (same model, defence, attack):
          the attack on the pipeline is weaker than a transfer attack — every such cell is
          named, with whether the gap is beyond sampling noise (paired McNemar test);
        - a gradient-free attack breaking more samples than every gradient attack together
          (beyond noise): gradient masking, the white-box numbers are not to be trusted.
        The headline worst case counts every cell either way.
        """
        for t in results.labels("train"):
            for d in results.labels("defense"):
                for a in results.attack_labels():
                    ad = results.get(t, d, a, "adaptive")
                    if ad is None or ad.cell.mode != "adaptive":
                        continue
                    for other in ("oblivious", "transfer"):
                        ob = results.get(t, d, a, other)
                        if ob is None or ob.cell.mode != other or len(ob.arrays["correct"]) != len(ad.arrays["correct"]):
                            continue
                        if ad.accuracy > ob.accuracy:
                            _, _, z = mcnemar_z(ad.arrays["correct"].astype(bool), ob.arrays["correct"].astype(bool))
                            self.warn(f"[{t}/{d}] {a}: adaptive accuracy {ad.accuracy:.1f}% is above {other} "
                                      f"{ob.accuracy:.1f}% ({_noise(z)}): the attack on the whole pipeline is weaker "
                                      f"than crafting on the undefended model; the worst case counts both")
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


#: attack parameters where a larger value must not make the attack weaker
STRENGTH = ("eps", "steps", "restarts", "queries", "max_iter", "iterations")


def eval_number(v: Any) -> float:
    from advx.values import parse_number

    try:
        return parse_number(v, "sweep")
    except Exception as exc:  # noqa: BLE001 - any unparsable value is simply skipped
        raise ValueError(str(exc)) from None
