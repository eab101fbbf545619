"""Results read back from a run file: per-sample arrays per cell, and metric tables."""

from __future__ import annotations

import json
from typing import Any

import attrs
import numpy as np

from .budget import Budget
from .threat_models import Oblivious
from .cells import CLEAN, Cell
from .verdict import binomial_upper, wilson


def _fmt(v: Any) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.2f}"
    return str(v)


@attrs.define
class MetricTable:
    """A table the papers print. ``plot`` is "bar" (grouped bars per row) or "line"
    (each row a curve over numeric columns) or None."""

    title: str
    columns: list[str]
    rows: list[list[Any]]
    plot: str | None = None
    note: str = ""
    plot_columns: list[str] | None = None  # the columns a bar plot shows (default: every numeric one)

    def to_dict(self) -> dict[str, Any]:
        return attrs.asdict(self)

    def text(self) -> str:
        """The table as the terminal shows it: title, header, aligned columns."""
        cells = [self.columns] + [[_fmt(v) for v in r] for r in self.rows]
        widths = [max(len(row[i]) for row in cells) for i in range(len(self.columns))]
        line = lambda row: "  ".join(c.ljust(w) if i < 2 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths)))  # noqa: E731
        out = [self.title, line(cells[0]), "  ".join("-" * w for w in widths)] + [line(r) for r in cells[1:]]
        return "\n".join(out)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "MetricTable":
        return cls(**d)


@attrs.define
class CellResult:
    cell: Cell
    arrays: dict[str, np.ndarray]
    info: dict[str, Any]

    @property
    def accuracy(self) -> float:
        c = self.arrays.get("correct")
        return float(np.mean(c)) * 100 if c is not None and len(c) else float("nan")

    @property
    def finished(self) -> bool:
        return self.info.get("status") == "done"

    @property
    def members(self) -> list[str]:
        """An ensemble's member names, the meaning of its ``broken_by`` codes ([] for one attack;
        stored as a JSON string or an array)."""
        members = self.info.get("members")
        if isinstance(members, str):
            members = json.loads(members)
        return [str(m) for m in members] if members is not None and len(members) else []

    def unfinished_note(self, total: int) -> str:
        """How the report names a cell a crash or an interrupt left half-done."""
        c = self.cell
        return (f"unfinished cell {c.train}/{c.defense}/{c.attack} ({c.mode}): {int(self.info.get('n_done', 0))} of "
                f"{total} samples, interrupted or crashed; re-run the same command to finish it")


@attrs.define
class WorstCase:
    """The headline robust accuracy of one (trained model, defence, budget): a sample counts only
    if it is classified correctly clean and under every attack of that budget in every threat model
    that ran."""

    train: str
    defense: str
    budget: str                  # e.g. "linf 8/255"; "unbounded" for minimal-norm attacks
    index: np.ndarray            # test-set positions, in the cells' order
    correct: np.ndarray          # per sample: survived everything
    cells: list[CellResult]      # the clean cell and every attack cell it covers
    weakest: CellResult          # the attack cell with the lowest accuracy

    @property
    def accuracy(self) -> float:
        return float(np.mean(self.correct)) * 100 if len(self.correct) else float("nan")

    @property
    def modes(self) -> list[str]:
        return list(dict.fromkeys(c.cell.mode for c in self.cells if c.cell.mode != CLEAN))

    @property
    def attacks(self) -> list[str]:
        return list(dict.fromkeys(c.cell.attack for c in self.cells if c.cell.attack != CLEAN))


def attack_budget(attack: Any) -> str:
    """The budget an attack's results are grouped under ("linf 8/255", "unbounded"): :class:`Budget`."""
    return Budget.of(attack).label


def stands_for(c: "CellResult") -> list[str]:
    """The threat models a cell answers for (stored since threat models became objects; before,
    the cell's own mode)."""
    value = c.info.get("stands_for")
    if isinstance(value, str):
        value = json.loads(value)
    return list(value) if value else [c.cell.mode]


def cell_budget(c: CellResult) -> str:
    """A cell's recorded budget; "" in run files written before budgets were recorded."""
    return str(c.info.get("budget", ""))


def stronger_than(c: "CellResult") -> list[str]:
    """The threat models whose cell of the same attack ``c`` must not trail (a stored fact; for run
    files written before it was stored, the registered threat model's own declaration)."""
    value = c.info.get("stronger_than")
    if isinstance(value, str):
        value = json.loads(value)
    if value is not None:
        return list(value)
    from advx.registry import Registry

    try:
        return list(Registry().get("threat_model", c.cell.mode).stronger_than)
    except Exception:  # noqa: BLE001 - an unknown or uninstalled threat model declares nothing
        return []


def at_rows(c: CellResult, index: np.ndarray, key: str = "correct") -> np.ndarray | None:
    """Cell ``c``'s per-sample ``key`` at the test rows ``index`` (cells store their rows in their
    own order), or None when ``c`` lacks one of them."""
    pos = {int(i): j for j, i in enumerate(c.arrays["index"])}
    if any(int(i) not in pos for i in index):
        return None
    return c.arrays[key][[pos[int(i)] for i in index]]


def member_passes(arrays: dict[str, np.ndarray], attacked: np.ndarray, members: int) -> list[float | None]:
    """Mean forward + backward passes per attacked image for each member, then for the whole
    crafting, from the per-sample ledger (``member_forwards``, ``craft_forwards``, ...); None
    where the run file has no ledger."""
    n = max(int(attacked.sum()), 1)
    if "member_forwards" not in arrays:
        per_member: list[float | None] = [None] * members
    else:
        spent = np.asarray(arrays["member_forwards"])[attacked] + np.asarray(arrays["member_backwards"])[attacked]
        per_member = [round(float(spent[:, k].sum()) / n, 1) for k in range(members)]
    total = None
    if "craft_forwards" in arrays:
        total = round(float((np.asarray(arrays["craft_forwards"])[attacked]
                             + np.asarray(arrays["craft_backwards"])[attacked]).sum()) / n, 1)
    return [*per_member, total]


@attrs.define
class RunResults:
    header: dict[str, Any]
    cells: list[CellResult]
    test: dict[str, np.ndarray]
    metrics: dict[str, list[MetricTable]]
    warnings: list[str]
    models: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    adversarials: dict[str, dict[str, Any]] = attrs.field(factory=dict)
    context: dict[str, Any] = attrs.field(factory=dict)

    @classmethod
    def from_store(cls, store: Any) -> "RunResults":
        cells = []
        for key in store.names("cells"):
            info = store.attrs(f"cells/{key}")
            spec = json.loads(info["spec"])
            cells.append(CellResult(Cell(**spec), store.cell_arrays(f"cells/{key}"), info))
        cells.sort(key=lambda c: c.info.get("order", 0))
        metrics = {}
        for name in store.names("metrics"):
            tables = json.loads(store.attrs(f"metrics/{name}")["tables"])
            metrics[name] = [MetricTable.from_dict(t) for t in tables]
        test = {k: store.read(f"test/{k}") for k in store.names("test")}
        root = store.attrs("/")
        warnings = json.loads(root["warnings"]) if "warnings" in root else []
        models = {k: store.attrs(f"models/{k}") for k in store.names("models")}
        adv = {k: store.attrs(f"adversarials/{k}") for k in store.names("adversarials")}
        return cls(store.header(), cells, test, metrics, warnings, models, adv)

    def tables(self) -> list[MetricTable]:
        """The report's tables: the headline worst case first (when any attack ran), then every
        evaluator's tables (or one accuracy table per threat model), minimal-norm and ensemble tables."""
        tables = [t for ts in self.metrics.values() for t in ts]
        tables = tables or [self.accuracy_table(m) for m in (self.modes() or [Oblivious.name])]
        headline = self.worst_case_table()
        return ([headline] if headline.rows else []) + tables + self.minimal_norm_tables() + self.ensemble_tables() \
            + self.fast_check_tables()

    def notes(self) -> list[str]:
        """The run's stored warnings, then one line per cell a crash or an interrupt left unfinished."""
        total = len(self.test.get("index", ()))
        return list(self.warnings) + [c.unfinished_note(total) for c in self.cells if not c.finished]

    def text(self) -> str:
        """Every table, then every warning, as ``advx report`` prints them."""
        parts = [t.text() + "\n" for t in self.tables()] + [f"warning: {w}" for w in self.notes()]
        return "\n".join(parts)

    def __repr__(self) -> str:
        """The report's tables (what a notebook cell shows for a result)."""
        return self.text().rstrip() or f"RunResults({len(self.cells)} cells)"

    def to_pandas(self) -> Any:
        """One row per cell: train, defense, attack, mode, budget, accuracy (%), samples, finished
        (needs pandas)."""
        try:
            import pandas as pd
        except ImportError:
            raise ImportError("RunResults.to_pandas needs pandas: pip install pandas") from None
        return pd.DataFrame([{**c.cell.spec(), "budget": cell_budget(c), "accuracy": c.accuracy,
                              "samples": len(c.arrays.get("correct", ())), "finished": c.finished}
                             for c in self.cells])

    # ------------------------------------------------------------------ lookups
    def get(self, train: str, defense: str, attack: str, mode: str | None = None) -> CellResult | None:
        for c in self.cells:
            if (c.cell.train, c.cell.defense, c.cell.attack) == (train, defense, attack) and (
                    mode is None or attack == CLEAN or c.cell.mode == mode or mode in stands_for(c)):
                return c
        return None

    def labels(self, field: str) -> list[str]:
        return list(dict.fromkeys(getattr(c.cell, field) for c in self.cells))

    def attack_labels(self) -> list[str]:
        return [a for a in self.labels("attack") if a != CLEAN]

    def modes(self) -> list[str]:
        return [m for m in self.labels("mode") if m != CLEAN]

    def budgets(self) -> list[str]:
        """The attack budgets that ran ("linf 8/255", "l2 0.5", "unbounded"), in order of first use."""
        return list(dict.fromkeys(cell_budget(c) for c in self.cells if c.cell.mode != CLEAN))

    def trailing(self) -> list[tuple["CellResult", "CellResult", np.ndarray, np.ndarray]]:
        """Every finished attack cell that leaves more samples robust than the cell of the same
        attack in a threat model it is stronger than (adaptive above oblivious: a failed adaptive
        attack), with both cells' ``correct`` on the samples they share."""
        out = []
        for c in self.cells:
            if c.cell.mode == CLEAN or not c.finished:
                continue
            for weaker in stronger_than(c):
                o = next((w for w in self.cells if w.cell.mode == weaker and w.finished and (
                    w.cell.train, w.cell.defense, w.cell.attack) == (c.cell.train, c.cell.defense, c.cell.attack)), None)
                if o is None:
                    continue
                common = np.intersect1d(c.arrays["index"], o.arrays["index"])
                if not len(common):
                    continue
                a_ok, o_ok = at_rows(c, common).astype(bool), at_rows(o, common).astype(bool)
                if a_ok.sum() > o_ok.sum():
                    out.append((c, o, a_ok, o_ok))
        return out

    def stronger_pairs(self) -> int:
        """How many (cell, weaker threat model's cell) pairs of one attack ran."""
        return sum(1 for c in self.cells if c.cell.mode != CLEAN and c.finished for w in stronger_than(c)
                   if any(o.cell.mode == w and o.finished and (o.cell.train, o.cell.defense, o.cell.attack) ==
                          (c.cell.train, c.cell.defense, c.cell.attack) for o in self.cells))

    def worst_case(self, train: str, defense: str, budget: str | None = None) -> WorstCase | None:
        """Per-sample worst case over every finished cell of (``train``, ``defense``): clean and
        every attack of ``budget`` in every mode. ``budget = None`` takes the run's only budget and
        refuses to mix several (a sample broken at eps 0.3 says nothing about eps 0.03). Cells are
        aligned by test index; a cell that has not finished every sample restricts the result to
        the samples all cells share."""
        if budget is None:
            budgets = self.budgets()
            if len(budgets) > 1:
                raise ValueError(f"this run has attacks of several budgets {budgets}; name one: "
                                 f"worst_case({train!r}, {defense!r}, budget={budgets[0]!r})")
            budget = budgets[0] if budgets else ""
        cells = [c for c in self.cells if (c.cell.train, c.cell.defense) == (train, defense)
                 and len(c.arrays.get("correct", ())) and c.finished
                 and (c.cell.mode == CLEAN or cell_budget(c) == budget)]
        if not cells or all(c.cell.mode == CLEAN for c in cells):
            return None
        common = cells[0].arrays["index"]
        for c in cells[1:]:
            if len(c.arrays["index"]) != len(common) or not np.array_equal(c.arrays["index"], common):
                common = np.intersect1d(common, c.arrays["index"])
        correct = np.ones(len(common), dtype=bool)
        for c in cells:
            correct &= at_rows(c, common).astype(bool)
        attacked = [c for c in cells if c.cell.mode != CLEAN]
        return WorstCase(train, defense, budget, np.asarray(common), correct, cells,
                         min(attacked, key=lambda c: c.accuracy))

    def worst_case_table(self) -> MetricTable:
        """The report's first table: one robust-accuracy number per (trained model, defence) and
        attack budget."""
        budgets = self.budgets()
        rows = []
        for t in self.labels("train"):
            for d in self.labels("defense"):
                clean = self.get(t, d, CLEAN)
                if clean is None:
                    continue
                for b in budgets:
                    w = self.worst_case(t, d, b)
                    if w is None:
                        continue
                    weak = w.weakest
                    rows.append([t, d, *([b or "—"] if len(budgets) > 1 else []), round(clean.accuracy, 2),
                                 round(w.accuracy, 2), ", ".join(w.modes), len(w.attacks),
                                 f"{weak.cell.attack} ({weak.cell.mode}) {weak.accuracy:.2f}"])
        budget_column = ["budget"] if len(budgets) > 1 else []
        only = f" ({budgets[0]})" if len(budgets) == 1 and budgets[0] else ""
        return MetricTable(f"robust accuracy (%) — per-sample worst case over every attack and threat model{only}",
                           ["train", "defense", *budget_column, "clean", "robust", "threat models", "attacks",
                            "weakest single cell"],
                           rows, plot="bar", plot_columns=["clean", "robust"],
                           note="a sample counts as robust only if it is classified correctly clean and under every "
                                "attack of its budget in every threat model listed; budgets are never mixed "
                                "('unbounded': minimal-norm attacks such as DeepFool and CW)")

    def minimal_norm_tables(self) -> list[MetricTable]:
        """Minimal-norm attacks (DeepFool, CW: budget 'unbounded') as the field reports them: on the
        samples classified correctly clean, the success rate with its 95 % Wilson interval and the
        median and mean perturbation norms of the successful ones. Their 'accuracy' (the failure
        rate) says little: any point is reachable without a budget."""
        rows = []
        for c in self.cells:
            if c.cell.mode == CLEAN or cell_budget(c) != "unbounded" or not len(c.arrays.get("correct", ())):
                continue
            clean = self.get(c.cell.train, c.cell.defense, CLEAN)
            clean_correct = None if clean is None else at_rows(clean, c.arrays["index"])
            if clean_correct is None:
                continue
            attacked = clean_correct.astype(bool)
            won = attacked & ~c.arrays["correct"].astype(bool)
            n, k = int(attacked.sum()), int(won.sum())
            low, high = wilson(k, n) if n else (float("nan"), float("nan"))
            norms = [(np.median(c.arrays[key][won]), np.mean(c.arrays[key][won])) if k and key in c.arrays
                     else (None, None) for key in ("l2", "linf")]
            rows.append([c.cell.train, c.cell.defense, c.cell.attack, c.cell.mode, n,
                         round(100 * k / n, 2) if n else None, round(low, 2), round(high, 2),
                         *(None if v is None else round(float(v), 4) for pair in norms for v in pair)])
        if not rows:
            return []
        return [MetricTable("minimal-norm attacks: success rate and the norms they needed",
                            ["train", "defense", "attack", "mode", "attacked", "success", "95% low", "95% high",
                             "median l2", "mean l2", "median linf", "mean linf"], rows,
                            note="on the samples classified correctly clean; norms over the successful ones "
                                 "(pixels in [0, 1]); the interval is Wilson's")]

    def ensemble_tables(self) -> list[MetricTable]:
        """For each ensemble attack (AutoAttack): robust accuracy after each member, as the
        reference prints it, from the per-sample ``broken_by`` record (member index, −1 survived,
        −2 wrong on clean input), with the cell's forward and backward passes. One table per
        member list."""
        groups: dict[tuple[str, ...], list[CellResult]] = {}
        for c in self.cells:
            if not c.members or "broken_by" not in c.arrays or not c.finished:
                continue
            groups.setdefault(tuple(c.members), []).append(c)
        tables = []
        for members, cells in groups.items():
            rows = []
            for c in cells:
                bb = np.asarray(c.arrays["broken_by"]).astype(int)
                n = max(len(bb), 1)
                after = [round(100 * float(((bb == -1) | (bb > k)).sum()) / n, 2) for k in range(len(members))]
                rows.append([c.cell.train, c.cell.defense, c.cell.attack, c.cell.mode,
                             round(100 * float((bb != -2).sum()) / n, 2), *after, round(c.accuracy, 2),
                             *member_passes(c.arrays, bb != -2, len(members)),
                             int(c.info.get("forwards", 0)), int(c.info.get("backwards", 0))])
            tables.append(MetricTable(
                f"robust accuracy (%) after each member — {', '.join(members)}",
                ["train", "defense", "attack", "mode", "clean", *[f"after {m}" for m in members], "cell",
                 *[f"passes/image {m}" for m in members], "passes/image", "forwards", "backwards"], rows,
                note="each member attacks only the samples no earlier one broke; 'cell' is the stored result, "
                     "evaluated on the deployed pipeline; passes/image: forward + backward passes of one image "
                     "through the model, per sample attacked (correct on clean input), from the per-sample ledger "
                     "(each member's verdict pass included; the last column: the whole crafting, the ensemble's "
                     "clean pass too; empty in run files written before the ledger); forwards/backwards: "
                     "batched passes the cell made"))
        return tables

    def fast_check_tables(self) -> list[MetricTable]:
        """For each fast AutoAttack cell: its check subsample, the samples the fast version left
        robust that the standard ensemble broke there, and the one-sided 95 % (Clopper–Pearson)
        upper bound on the robust accuracy the fast version overstates, in points."""
        rows = []
        for c in self.cells:
            if "check" not in c.arrays or not c.finished:
                continue
            check = np.asarray(c.arrays["check"]).astype(int)
            checked, missed = int((check >= 0).sum()), int((check == 1).sum())
            attacked = np.asarray(c.arrays.get("broken_by", check)) != -2
            spent = np.asarray(c.arrays.get("check_forwards", 0)) + np.asarray(c.arrays.get("check_backwards", 0))
            bound = round(binomial_upper(missed, checked), 2) if checked else None
            rows.append([c.cell.train, c.cell.defense, c.cell.attack, c.cell.mode, round(c.accuracy, 2), checked,
                         missed, bound, round(float(np.sum(spent)) / max(int(attacked.sum()), 1), 1),
                         "overstated: run the standard version" if missed else "no miss seen"])
        if not rows:
            return []
        return [MetricTable("fast AutoAttack's check against the standard ensemble",
                            ["train", "defense", "attack", "mode", "robust (fast)", "checked", "missed",
                             "overstates at most (points, 95%)", "check passes/image", "verdict"], rows,
                            note="checked: the seeded subsample also attacked with the standard ensemble at "
                                 "AutoAttack's settings; missed: robust under the fast members, broken by the "
                                 "standard ensemble; the bound is one-sided Clopper-Pearson on missed/checked")]

    def accuracy_table(self, mode: str) -> MetricTable:
        """Rows: (training variant, defence); columns: clean then each attack (accuracy, %)."""
        attacks = self.attack_labels()
        rows = []
        for t in self.labels("train"):
            for d in self.labels("defense"):
                clean = self.get(t, d, CLEAN)
                if clean is None:
                    continue
                row: list[Any] = [t, d, round(clean.accuracy, 2)]
                for a in attacks:
                    r = self.get(t, d, a, mode)
                    row.append(round(r.accuracy, 2) if r is not None and r.finished else None)
                rows.append(row)
        return MetricTable(f"accuracy (%) — {mode} attacks", ["train", "defense", "clean", *attacks], rows, plot="bar")
