"""Built-in evaluators: accuracy tables, worst case over attacks, k-split mean ± std,
accuracy on the base-correct subset (paper 003), eps/steps sweeps (paper 002) and Gaussian-noise
sensitivity on training images (paper 000, Table 2)."""

from __future__ import annotations

from typing import Any, ClassVar

import attrs
import numpy as np
import torch

from advx.data.bundle import as_float

from .cells import CLEAN, NONE
from .threat_models import Oblivious
from .results import MetricTable, RunResults, cell_budget


@attrs.frozen
class Accuracy:
    """Clean and robust accuracy (%) per training variant and defence, one table per mode."""

    name: ClassVar[str] = "accuracy"

    def evaluate(self, results: RunResults) -> list[MetricTable]:
        return [results.accuracy_table(m) for m in (results.modes() or [Oblivious.name])]



@attrs.frozen
class WorstCase:
    """Per-sample worst case over every attack, per threat model (a sample counts only if it
    survives all), and — for ensembles that record it (AutoAttack) — which member broke how many
    samples. The overall worst case over every mode leads every report regardless."""

    name: ClassVar[str] = "worst-case"

    def evaluate(self, results: RunResults) -> list[MetricTable]:
        return [self.per_mode(results), *self.breakdown(results)]

    @staticmethod
    def breakdown(results: RunResults) -> list[MetricTable]:
        rows, members = [], None
        for c in results.cells:
            if "broken_by" not in c.arrays or not c.members:
                continue
            names = c.members
            if members is not None and names != members:
                continue
            members = names
            codes = c.arrays["broken_by"]
            rows.append([c.cell.train, c.cell.defense, c.cell.attack, c.cell.mode, int((codes == -2).sum()),
                         *(int((codes == k).sum()) for k in range(len(names))), int((codes == -1).sum())])
        if not rows:
            return []
        return [MetricTable("ensemble: samples broken by each member (on the model the attack ran on)",
                            ["train", "defense", "attack", "mode", "misclassified clean", *members, "survived"], rows)]

    @staticmethod
    def per_mode(results: RunResults) -> MetricTable:
        rows = []
        budgets = results.budgets()
        for mode in results.modes():
            for b in budgets:
                for t in results.labels("train"):
                    for d in results.labels("defense"):
                        cells = [results.get(t, d, a, mode) for a in results.attack_labels()]
                        cells = [c for c in cells if c is not None and cell_budget(c) == b]
                        if not cells:
                            continue
                        survived = np.logical_and.reduce([c.arrays["correct"] for c in cells])
                        rows.append([t, d, mode, *([b or "—"] if len(budgets) > 1 else []), len(cells),
                                     round(float(survived.mean()) * 100, 2)])
        budget_column = ["budget"] if len(budgets) > 1 else []
        return MetricTable("worst case over attacks (%), per threat model",
                           ["train", "defense", "mode", *budget_column, "attacks", "accuracy"], rows)


def _mean_std(correct: np.ndarray, folds: np.ndarray) -> tuple[float, float]:
    accs = [correct[folds == k].mean() * 100 for k in np.unique(folds)]
    return float(np.mean(accs)), float(np.std(accs))


def _grid_table(results: RunResults, title: str, value) -> MetricTable:
    """Rows (train, defence, mode), columns clean + each attack, cells ``value(cell_result)``."""
    columns = [CLEAN, *results.attack_labels()]
    rows = []
    for mode in results.modes() or [Oblivious.name]:
        for t in results.labels("train"):
            for d in results.labels("defense"):
                cells = [results.get(t, d, a, mode) for a in columns]
                rows.append([t, d, mode, *(None if c is None else value(c) for c in cells)])
    return MetricTable(title, ["train", "defense", "mode", *columns], rows)


@attrs.frozen
class Splits:
    """Mean ± std accuracy over the k test splits (``data.splits``), as paper 003 reports."""

    name: ClassVar[str] = "splits"

    def evaluate(self, results: RunResults) -> list[MetricTable]:
        folds = results.test["fold"]
        pos = {int(i): j for j, i in enumerate(results.test["index"])}

        def value(c: Any) -> str:
            m, s = _mean_std(c.arrays["correct"], folds[[pos[int(i)] for i in c.arrays["index"]]])
            return f"{m:.1f} ± {s:.1f}"

        k = len(np.unique(folds))
        return [_grid_table(results, f"accuracy (%) mean ± std over {k} test splits", value)]


@attrs.frozen
class BaseCorrect:
    """Accuracy on the test samples the base model classifies correctly when clean (paper 003)."""

    name: ClassVar[str] = "base-correct"
    base: str = "base"

    def evaluate(self, results: RunResults) -> list[MetricTable]:
        ref = results.get(self.base, NONE, CLEAN)
        if ref is None:
            return []
        mask = ref.arrays["correct"]
        return [_grid_table(results, f"accuracy (%) on the {int(mask.sum())} samples '{self.base}' gets right when clean",
                            lambda c: round(float(c.arrays["correct"][mask].mean()) * 100, 2))]


@attrs.frozen
class Sweep:
    """Accuracy against a swept attack parameter (``[[attack]] sweep = {eps = [...]}``): one
    curve per (training variant, defence), as in paper 002's figures."""

    name: ClassVar[str] = "sweep"

    def evaluate(self, results: RunResults) -> list[MetricTable]:
        cfg = results.context["experiment"].config
        groups: dict[tuple[str, str], list[Any]] = {}
        for a in cfg.attacks:
            if a.sweep_param is not None:
                groups.setdefault((a.component.where, a.sweep_param), []).append(a)
        tables = []
        for (_, param), specs in groups.items():
            name = specs[0].component.name
            values = [str(s.sweep_value) for s in specs]
            for mode in results.modes():
                rows = []
                for t in results.labels("train"):
                    for d in results.labels("defense"):
                        row = [f"{t}/{d}"]
                        for s in specs:
                            c = results.get(t, d, s.label, mode)
                            row.append(None if c is None else round(c.accuracy, 2))
                        rows.append(row)
                tables.append(MetricTable(f"{name}: accuracy (%) vs {param} — {mode}", ["model/defense", *values], rows,
                                          plot="line"))
        return tables


@attrs.frozen
class NoiseSensitivity:
    """Accuracy of each trained model on its own *training* images under Gaussian noise
    GN(σ), and the relative drop — paper 000 (Agarwal et al.), Section 3 and Table 2."""

    name: ClassVar[str] = "noise-sensitivity"
    sigmas: tuple[float, ...] = (0.01, 0.05, 0.08)
    limit: int = 10000
    seed: int = 0

    def evaluate(self, results: RunResults) -> list[MetricTable]:
        ctx = results.context
        data, models = ctx["data"], ctx["models"]
        idx = ctx["train_index"][: self.limit]
        x = as_float(data.x_train[idx.to(data.x_train.device)])
        y = data.y_train[idx.to(data.y_train.device)]
        g = torch.Generator().manual_seed(self.seed)
        noises = {s: torch.randn(x.shape, generator=g).to(x) * s for s in self.sigmas}
        rows = []
        for label, model in models.items():
            clean = _accuracy(model, x, y)
            row: list[Any] = [label, round(clean, 2)]
            for s in self.sigmas:
                acc = _accuracy(model, (x + noises[s]).clamp(0, 1), y)
                row += [round(acc, 2), round(100 * (clean - acc) / max(clean, 1e-9), 2)]
            rows.append(row)
        cols = ["train", "seen (clean)"]
        for s in self.sigmas:
            cols += [f"GN{s:g}", f"drop% GN{s:g}"]
        return [MetricTable(f"noise sensitivity on {len(y)} training images (paper 000, Table 2)", cols, rows)]


def _accuracy(model: torch.nn.Module, x: torch.Tensor, y: torch.Tensor, batch: int = 512) -> float:
    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(x), batch):
            correct += int((model(x[i:i + batch]).argmax(1) == y[i:i + batch]).sum())
    return 100.0 * correct / max(1, len(y))


EVALUATORS = [Accuracy, WorstCase, Splits, BaseCorrect, Sweep, NoiseSensitivity]
