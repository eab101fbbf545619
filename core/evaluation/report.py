"""Print and write the tables and plots of a run (terminal, Markdown, CSV, PNG)."""

from __future__ import annotations

import csv
import json
import re
from pathlib import Path
from typing import Any

import numpy as np

from .results import MetricTable, RunResults, _fmt


def format_table(t: MetricTable) -> str:
    return t.text()


def markdown_table(t: MetricTable) -> str:
    out = [f"### {t.title}", "", "| " + " | ".join(t.columns) + " |", "|" + "---|" * len(t.columns)]
    out += ["| " + " | ".join(_fmt(v) for v in r) + " |" for r in t.rows]
    return "\n".join(out)


def all_tables(results: RunResults) -> list[MetricTable]:
    """The headline worst-case table first (when any attack ran), then every evaluator's tables."""
    return results.tables()


def print_report(results: RunResults, echo=print) -> None:
    echo(results.text())


def report_warnings(results: RunResults) -> list[str]:
    """The run's stored warnings, then one line per cell a crash or an interrupt left unfinished."""
    return results.notes()


def _slug(s: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", s).strip("_")[:60] or "table"


#: the files of one table (``NN_title.csv`` / ``.png``): write_report removes those it did not write
TABLE_FILE = re.compile(r"^\d\d_[A-Za-z0-9_]+\.(csv|png)$")

#: per-cell, per-sample results beside summary.json: paired tests (McNemar) can be recomputed
PER_SAMPLE = "per_sample.npz"


def run_seconds(results: RunResults) -> dict[str, float]:
    """Where a run's time went, from what each model and cell recorded: training (models trained in
    this run, not loaded from the cache), the cells, and their sum (the run's compute time, without
    start-up; a resume adds only what it ran)."""
    training = sum(float(m.get("seconds", 0.0)) for m in results.models.values() if not m.get("cached"))
    cells = sum(float(c.info.get("seconds", 0.0)) for c in results.cells if c.finished)
    return {"training": round(training, 1), "cells": round(cells, 1), "total": round(training + cells, 1)}


def summary(results: RunResults, command: str | None = None, *, tables: list[MetricTable] | None = None,
            warnings: list[str] | None = None) -> dict[str, Any]:
    """Everything a README table is generated from: the tables, warnings, the exact command that
    made the run (stored in it; ``command`` when the run predates that) and the one that wrote
    this report (``report_command``), and the run's identity (config hash, versions, device, date). ``tables``/``warnings``: already
    computed by the caller (write_report), so they are not computed twice."""
    h = results.header
    cfg = h["config"]
    return {"command": h.get("command") or command, "report_command": command, "config_hash": h["config_hash"], "device": h["device"], "created": h["created"],
            "versions": h["versions"], "experiment": cfg.get("experiment", {}).get("name"),
            # self-describing: what ran, on how much, from which seed (the resolved config, not the file)
            "config": cfg, "seed": cfg.get("experiment", {}).get("seed"),
            "machine": h.get("machine"),
            "sizes": {"train": h.get("train_size"), "test": int(len(results.test.get("index", ()))),
                      "cells": len(results.cells), "finished_cells": sum(c.finished for c in results.cells)},
            "seconds": run_seconds(results),
            "models": {k: {a: v.item() if isinstance(v, np.generic) else v for a, v in m.items()
                           if isinstance(v, (int, float, str, np.generic))} for k, m in results.models.items()},
            "per_sample": PER_SAMPLE,
            "tables": [t.to_dict() for t in (all_tables(results) if tables is None else tables)],
            "warnings": report_warnings(results) if warnings is None else warnings}


def write_per_sample(results: RunResults, path: Path) -> Path:
    """Each finished cell's test rows, predictions and correctness, compressed (about a bit per
    sample and cell), with the cells' specs as JSON under ``cells``."""
    arrays: dict[str, Any] = {}
    specs = []
    for i, c in enumerate(results.cells):
        if not c.finished or "index" not in c.arrays:
            continue
        specs.append({**c.cell.spec(), "key": i, "budget": str(c.info.get("budget", ""))})
        arrays[f"{i}_index"] = np.asarray(c.arrays["index"], dtype=np.int32)
        arrays[f"{i}_correct"] = np.asarray(c.arrays["correct"], dtype=bool)
        if "prediction" in c.arrays:
            arrays[f"{i}_prediction"] = np.asarray(c.arrays["prediction"], dtype=np.int16)
    np.savez_compressed(path, cells=np.array(json.dumps(specs)), **arrays)
    return path


def write_report(results: RunResults, out_dir: Path, command: str | None = None) -> list[Path]:
    """Write report.md, summary.json, one CSV per table and a PNG per plottable table; return the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    md = [f"# advx report: {results.header['config'].get('experiment', {}).get('name', 'run')}", "",
          f"device: {results.header['device']} · created {results.header['created']} · "
          + ", ".join(f"{k} {v}" for k, v in sorted(results.header["versions"].items())), ""]
    tables, warned = all_tables(results), report_warnings(results)
    stored = summary(results, command, tables=tables, warnings=warned)
    if results.header.get("machine"):
        seconds = stored["seconds"]
        md += [f"machine: {results.header['machine']} · training {seconds['training']} s, cells "
               f"{seconds['cells']} s", ""]
    for i, t in enumerate(tables):
        stem = f"{i:02d}_{_slug(t.title)}"
        with open(out_dir / f"{stem}.csv", "w", newline="") as fh:
            w = csv.writer(fh)
            w.writerow(t.columns)
            w.writerows(t.rows)
        written.append(out_dir / f"{stem}.csv")
        md += [markdown_table(t), ""]
        if t.plot:
            png = plot_table(t, out_dir / f"{stem}.png", n=len(results.test.get("index", ())))
            if png is not None:
                md += [f"![{t.title}]({png.name})", ""]
                written.append(png)
    if warned:
        md += ["## Warnings", ""] + [f"- {w}" for w in warned] + [""]
    (out_dir / "report.md").write_text("\n".join(md))
    (out_dir / "summary.json").write_text(json.dumps(stored, indent=1, default=str))
    written[:0] = [out_dir / "report.md", out_dir / "summary.json", write_per_sample(results, out_dir / PER_SAMPLE)]
    for old in out_dir.iterdir():  # a table an earlier report had and this one does not: never left stale
        if TABLE_FILE.match(old.name) and old not in written:
            old.unlink()
    return written


def _interval(value: float, n: int) -> tuple[float, float]:
    """The 95 % Wilson interval of an accuracy in percent over ``n`` samples, as (below, above)."""
    from .verdict import wilson

    low, high = wilson(value / 100 * n, n)
    return max(0.0, value - low), max(0.0, high - value)  # at 0 % or 100 % rounding leaves -1e-17


def plot_table(t: MetricTable, path: Path, n: int = 0) -> Path | None:
    """A PNG of the table: each bar or point with its value and, given ``n`` test samples, its
    95 % Wilson interval as an error bar; a cell that did not run is marked 'not run', never
    drawn as 0."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is an optional extra
        return None
    fig, ax = plt.subplots(figsize=(max(6, 1.2 * len(t.columns)), 4))
    draw_table(ax, t, n)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def draw_table(ax: Any, t: MetricTable, n: int = 0) -> None:
    """Draw ``t`` on a matplotlib Axes (see :func:`plot_table`)."""
    import matplotlib

    bars = lambda ys: None if n <= 0 else np.array([_interval(v, n) for v in ys]).T  # noqa: E731
    upright = t.plot != "line" and len(t.rows) > 3  # beside narrow bars a horizontal "87.3" runs into its neighbour's
    if t.plot == "line":
        xs = t.columns[1:]
        for row in t.rows:
            ran = [(i, float(v)) for i, v in enumerate(row[1:]) if isinstance(v, (int, float))]
            if not ran:
                continue
            pos, ys = zip(*ran)
            ax.errorbar(pos, ys, yerr=bars(ys), marker="o", capsize=3, label=str(row[0]))
            for i, v in ran:
                ax.annotate(f"{v:.1f}", (i, v), textcoords="offset points", xytext=(0, 5), ha="center", fontsize=6)
        ax.set_xticks(range(len(xs)), xs)
        ax.set_xlabel(t.title.split(" vs ")[-1].split(" — ")[0] if " vs " in t.title else "")
    else:
        num_start = next((i for i, c in enumerate(t.columns) if c == "clean"), 2)
        numeric = [i for i in range(num_start, len(t.columns))
                   if all(r[i] is None or isinstance(r[i], (int, float)) for r in t.rows)
                   and (t.plot_columns is None or t.columns[i] in t.plot_columns)]
        groups = [t.columns[i] for i in numeric]
        width = 0.8 / max(1, len(t.rows))
        palette = matplotlib.colormaps["tab20" if len(t.rows) > 10 else "tab10"]  # tab10 repeats after 10 rows
        colour = lambda j: palette(j % palette.N)  # noqa: E731
        for j, row in enumerate(t.rows):
            xs = [i + j * width for i in range(len(groups))]
            ran = [(x, float(row[i])) for x, i in zip(xs, numeric) if row[i] is not None]
            label = "/".join(map(str, row[:num_start]))
            if ran:
                px, ys = zip(*ran)
                err = bars(ys)
                ax.bar(px, ys, width, yerr=err, capsize=2, label=label, color=colour(j))
                for k, (x, y) in enumerate(ran):  # the value sits above its error bar, not on it
                    top = y + (err[1][k] if err is not None else 0.0)
                    ax.annotate(f"{y:.1f}", (x, top), textcoords="offset points", xytext=(0, 2), ha="center",
                                va="bottom", fontsize=6, rotation=90 if upright else 0)
            for x, i in zip(xs, numeric):
                if row[i] is None:
                    ax.text(x, 2, "not run", rotation=90, ha="center", va="bottom", fontsize=6, color="0.4")
        ax.set_xticks([i + 0.4 - width / 2 for i in range(len(groups))], groups, rotation=20, ha="right")
    ax.set_ylabel("accuracy (%)" + (f", 95 % intervals over {n} samples" if n > 0 else ""))
    ax.set_ylim(0, 118 if upright else 105)  # room for upright values
    ax.set_title(t.title, fontsize=10)
    if len(t.rows) > 6:  # a long legend inside the axes hides bars: put it beside them
        ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize=7, loc="best")
