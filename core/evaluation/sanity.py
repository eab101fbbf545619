"""AutoAttack-style sanity checks: randomness, dead gradients, signs of gradient masking."""

from __future__ import annotations

import math
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from advx.defense import DefendedClassifier


class SanityLog:
    """Collects warnings (printed by ``advx run``, stored in the run file's ``warnings``)."""

    def __init__(self) -> None:
        self.messages: list[str] = []
        self._checked: set[tuple[str, str]] = set()

    def warn(self, msg: str) -> None:
        if msg not in self.messages:
            self.messages.append(msg)

    def check_cell(self, cell: Any, model: nn.Module, x: torch.Tensor, y: torch.Tensor, autocast: Any, *,
                   attacked_with_eot: bool = False) -> None:
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
        if any(getattr(t, "name", "") == "counteract" for m in model.modules()
               if isinstance(m, DefendedClassifier) for t in m.transforms):
            self.warn(f"[{cell.train}/{cell.defense}] the defence optimises its input at inference time; "
                      "AutoAttack's checks flag such defences — report adaptive (BPDA/EOT) numbers too")
        xg = x.clone().requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(model(xg).float(), y)
            (grad,) = torch.autograd.grad(loss, xg, allow_unused=True)
        if grad is None or not torch.isfinite(grad).all():
            self.warn(f"[{cell.train}/{cell.defense}] input gradients are missing or NaN: gradient-based attacks "
                      "are meaningless here; use BPDA or a gradient-free attack")
            return
        zero = (grad.flatten(1).abs().amax(1) == 0).float().mean().item()
        if zero > 0.5:
            self.warn(f"[{cell.train}/{cell.defense}] {zero:.0%} of samples have an all-zero input gradient "
                      "(gradient masking?)")

    def check_monotone(self, results: Any, cfg: Any) -> None:
        """A stronger attack (larger swept value) must not leave *higher* accuracy."""
        groups: dict[tuple[str, str], list[tuple[float, str]]] = {}
        for a in cfg.attacks:
            if a.sweep_param in ("eps", "steps", "max_iter", "iterations") and isinstance(a.sweep_value, (int, float, str)):
                try:
                    v = float(eval_number(a.sweep_value))
                except ValueError:
                    continue
                groups.setdefault((a.component.name, a.sweep_param), []).append((v, a.label))
        for (name, param), pts in groups.items():
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
                                          f"{param} grows {v1:g} -> {v2:g}: a sign of gradient masking")


def eval_number(v: Any) -> float:
    from advx.registry.resolve import parse_number

    try:
        return parse_number(v, "sweep")
    except Exception as exc:  # noqa: BLE001 - any unparsable value is simply skipped
        raise ValueError(str(exc)) from None
