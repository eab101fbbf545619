"""``advx reproduce PAPER``: a paper's experiments at the paper's own setting, one command away.

Each paper's example configs (``examples/*.toml``) hold its own protocol: its data set, network,
epochs and attacks. ``reproduce`` runs every one whose data is present (on a GPU when there is one,
``experiment.device = "auto"``), one resumable run file and report folder per config under
``--out-dir``, with the run's progress bars and their ETA; a config whose data cannot be found is
skipped with one line saying what is missing and how to get it. ``--tiny`` shrinks each config to
a smoke test (16 test images, one epoch per model) to check the whole pipeline first.

The stored READMEs' tables are CPU stand-ins (``benchmarks/paper_runs_cpu.sh``); this is the
command that replaces them where the hardware and the data allow.
"""

from __future__ import annotations

import time
import tomllib
from pathlib import Path
from typing import Any, Callable

import attrs

from advx.errors import ConfigError, DatasetNotFoundError

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


@attrs.frozen
class Paper:
    title: str
    plugin: str
    configs: tuple[str, ...]  # the paper's own setting (example names), in the order they run
    stand_ins: tuple[str, ...] = ()  # the CPU stand-ins whose runs made the plugin README's tables


PAPERS = {
    "000": Paper("intelligent (label-aware) mixup and Gaussian-noise sensitivity", "intelligent-mixup",
                 ("intelligent_mixup_fmnist",)),
    "001": Paper("adversarial attack and defense based on data mixup", "mixup", ("mixup_at_mnist",)),
    "002": Paper("BatchOut feature augmentation", "batchout", ("batchout_mnist", "batchout_cifar")),
    "003": Paper("fixer modules on a frozen model", "fixer",
                 ("fixer_hist", "fixer_pcam", "fixer_pathmnist", "fixer_cifar10"),
                 ("fixer_fmnist", "fixer_fmnist_drn")),
    "004": Paper("counteracting adversarial perturbations at inference", "counteract", ("counteract_cifar10",),
                 ("counteract_fmnist", "counteract_fmnist_table3")),
}


def listing() -> list[str]:
    """Every paper with its configs, the paper's own setting and the CPU stand-ins apart (``--list``)."""
    lines = []
    for key, paper in PAPERS.items():
        lines.append(f"{key} ({paper.plugin}): {paper.title}")
        lines.append(f"    paper's setting: {', '.join(f'examples/{c}.toml' for c in paper.configs)}")
        if paper.stand_ins:
            lines.append(f"    CPU stand-ins (--stand-ins): {', '.join(f'examples/{c}.toml' for c in paper.stand_ins)}")
    return lines


def find_paper(name: str) -> tuple[str, Paper]:
    """A paper by number ("004", "4") or by its plugin's name ("counteract")."""
    key = name.zfill(3) if name.isdigit() else next((k for k, p in PAPERS.items() if p.plugin == name), name)
    if key not in PAPERS:
        known = ", ".join(f"{k} ({p.plugin})" for k, p in PAPERS.items())
        raise ConfigError(f"unknown paper {name!r}; known: {known}")
    return key, PAPERS[key]


def tiny_overrides(config: Path) -> list[str]:
    """A smoke-test size for any config: 16 test images and one epoch for every model it trains."""
    raw = tomllib.loads(config.read_text())
    out = ["data.test_limit=16", "model.train.epochs=1"]
    out += [f"train.{i}.epochs=1" for i, t in enumerate(raw.get("train", [])) if "epochs" in t]
    return out


def reproduce(name: str, *, tiny: bool = False, overrides: list[str] | None = None, device: str | None = None,
              out_dir: Path = Path("runs/reproduce"), echo: Callable[[str], Any] = print,
              stand_ins: bool = False) -> dict[str, str]:
    """Run every config of paper ``name`` (its CPU stand-ins instead with ``stand_ins``); return
    {config: "done" | "skipped: why"}."""
    from advx import load_experiment
    from advx.evaluation.report import write_report

    key, paper = find_paper(name)
    if not EXAMPLES.is_dir():
        raise ConfigError(f"{EXAMPLES}: the examples folder is not here; run advx reproduce from a clone of the "
                          f"repository")
    configs = paper.stand_ins if stand_ins else paper.configs
    if not configs:
        raise ConfigError(f"paper {key} has no CPU stand-in: its own configs are the ones to run (advx reproduce {key})")
    kind = "CPU stand-in" if stand_ins else "config"
    echo(f"paper {key}: {paper.title} ({paper.plugin}); {len(configs)} {kind}(s){', tiny' if tiny else ''}"
         + ("" if stand_ins or not paper.stand_ins else
            f"; its CPU stand-ins ({', '.join(paper.stand_ins)}) run with --stand-ins"))
    outcome = {}
    for i, stem in enumerate(configs, 1):
        path = EXAMPLES / f"{stem}.toml"
        sets = (tiny_overrides(path) if tiny else []) + list(overrides or [])
        tag = f"{stem}-tiny" if tiny else stem
        echo(f"[{i}/{len(configs)}] {path.name}{' ' + ' '.join('--set ' + s for s in sets) if sets else ''}")
        start = time.perf_counter()
        try:
            results = load_experiment(path, sets).run(out_dir / f"{tag}.h5", device=device)
        except DatasetNotFoundError as exc:
            outcome[stem] = f"skipped: {exc}"
            echo(f"  skipped: {exc}")
            continue
        written = write_report(results, out_dir / f"{tag}_report",
                               command=f"advx reproduce {name}{' --tiny' if tiny else ''}")
        outcome[stem] = "done"
        echo(f"  done in {time.perf_counter() - start:.0f} s: {out_dir / f'{tag}.h5'}, report in {written[0].parent}")
    return outcome
