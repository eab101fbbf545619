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

import functools
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
    "001": Paper("adversarial attack and defense based on data mixup", "mixup", ("mixup_at_mnist", "mixup_table3_mnist")),
    "002": Paper("BatchOut feature augmentation", "batchout", ("batchout_mnist", "batchout_k_mnist", "batchout_cifar")),
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


#: The GPU-hours anchor: PGD-10 on ResNet-18 (3 x 32 x 32 inputs, fp32, batch 1,024) ran 4,140 images a
#: second on one H200, 10 forward+backward passes each (benchmarks/results/gpu/final/attacks_gpu_fp32.json,
#: 2026-12-04; a test holds this number to that file). A network of F forward FLOPs is taken to run
#: at the same FLOP rate: ANCHOR_PASSES_S * ANCHOR_FLOPS / F passes a second.
ANCHOR_PASSES_S = 41_396
ANCHOR_MODEL, ANCHOR_SHAPE = "resnet18", (3, 32, 32)
#: A small network is not compute-bound: the digits CNN ran at most 882,800 forward+backward passes
#: a second on the same H200 (adaptive PGD-10 with one EOT draw per pass, 4,096 images: 0.928 s for
#: 200 passes each; benchmarks/results/gpu/final/eot_batching_gpu.json), so no network is estimated
#: faster than that.
SMALL_NETWORK_PASSES_S = 882_800

#: Train and test sizes and image shapes of the papers' data sets, for a plan made where the data
#: is not (the folder data sets have none: their plan says so).
KNOWN_DATA = {"mnist": (60_000, 10_000, (1, 28, 28)), "fashion-mnist": (60_000, 10_000, (1, 28, 28)),
              "cifar10": (50_000, 10_000, (3, 32, 32)), "cifar100": (50_000, 10_000, (3, 32, 32)),
              "svhn": (73_257, 26_032, (3, 32, 32)), "pathmnist": (89_996, 7_180, (3, 28, 28)),
              "pcam": (262_144, 32_768, (3, 96, 96))}


def attack_passes(attack: Any) -> int:
    """Forward+backward passes per image an attack spends at most (every sample surviving every
    step): one for a one-step attack (FGSM, noise), its queries for a query attack (Square), else
    steps x restarts x targets (x binary-search steps); AutoAttack's standard ensemble as APGD-CE,
    then APGD-T and FAB-T (two passes a step) over its targets, then Square."""
    def count(field: str, default: int) -> int:
        return int(getattr(attack, field, default) or default)

    steps, targets, queries = count("steps", 1), count("targets", 1), count("queries", 0)
    if getattr(attack, "name", "") == "autoattack":
        return steps + 3 * steps * targets + queries
    if queries:
        return queries
    if not hasattr(attack, "steps"):
        return 1
    return steps * count("restarts", 1) * count("binary_search_steps", 1) * targets


def _steps_in(params: Any) -> int:
    """The largest ``steps`` a training augmentation's parameters hold (adversarial training's
    inner attack), nested tables included; 0 when it has none."""
    if isinstance(params, dict):
        return max([int(v) for k, v in params.items() if k == "steps" and isinstance(v, int)]
                   + [_steps_in(v) for v in params.values()] + [0])
    return max([_steps_in(v) for v in params] + [0]) if isinstance(params, (list, tuple)) else 0


def forward_flops(model: Any, shape: tuple[int, ...]) -> float:
    """Forward FLOPs of one image through ``model`` (torch's FLOP counter, on the CPU)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(torch.zeros(1, *shape))
    return float(counter.get_total_flops())


@functools.cache
def anchor_flops() -> float:
    """The anchor network's forward FLOPs per image, counted once per process."""
    from advx.registry import Registry

    anchor = Registry().create("model", ANCHOR_MODEL).build(num_classes=10, in_channels=ANCHOR_SHAPE[0])
    return forward_flops(anchor, ANCHOR_SHAPE)


def plan_config(path: Path, sets: list[str]) -> dict[str, Any]:
    """What one config would run: sizes, models trained, cells, and its cost in forward+backward
    passes and in H200 GPU-hours at the anchor's FLOP rate, never above the small network's rate (an
    estimate: attacks as if every sample survived every step; a defence chain's own passes, such as
    counteract's search, are not counted)."""
    from advx import load_experiment
    from advx.evaluation.plan import make_plan

    exp = load_experiment(path, sets)
    cfg = exp.config
    if cfg.data.dataset.name in KNOWN_DATA:  # the standard sets' sizes, without reading them
        (n_train, n_test, shape), where = KNOWN_DATA[cfg.data.dataset.name], "known sizes"
    else:
        try:
            bundle = exp.components["dataset"].load()
        except DatasetNotFoundError:
            return {"config": path.stem, "why": f"data {cfg.data.dataset.name!r} is not here and its size is not known"}
        n_train, n_test, shape = len(bundle.y_train), len(bundle.y_test), tuple(bundle.x_test.shape[1:])
        where = "data here"
    size = getattr(exp.components["dataset"], "size", None)  # a data set resized when read
    shape = (shape[0], size, size) if isinstance(size, int) else shape
    n_test = min(n_test, cfg.data.test_limit or n_test)
    n_train = int(n_train * (1 - cfg.data.val_fraction) * cfg.data.train_fraction)
    train_passes = 0
    for t in cfg.trains:
        if cfg.pretrained and t.label == "base":
            continue
        n = int(n_train * (t.settings.train_fraction or 1))
        steps = max([_steps_in(a.params) for a in t.settings.augment] + [0])
        train_passes += t.settings.epochs * n * (1 + steps)
    cells = make_plan(cfg, exp.components).cells
    eval_passes = 0
    for c in cells:  # the crafting (an adaptive attack's EOT draws on every step), then the verdict's draws
        eot = max(c.defense.eot, 1) if c.cell.mode == "adaptive" else 1
        eval_passes += n_test * ((0 if c.clean else attack_passes(c.attack.attack) * eot) + max(c.defense.draws, 1))
    model = exp.registry.create("model", cfg.model.name, cfg.model.params).build(num_classes=10, in_channels=shape[0])
    rate = min(ANCHOR_PASSES_S * anchor_flops() / forward_flops(model, shape), SMALL_NETWORK_PASSES_S)
    return {"config": path.stem, "data": f"{cfg.data.dataset.name} ({where})", "train": n_train, "test": n_test,
            "models": len(cfg.trains), "cells": len(cells), "train_passes": train_passes,
            "eval_passes": eval_passes, "passes_per_s": rate, "gpu_hours": (train_passes + eval_passes) / rate / 3600}


def paper_configs(name: str, stand_ins: bool, only: tuple[str, ...] = ()) -> tuple[str, Paper, tuple[str, ...]]:
    """Paper ``name``'s key, record and configs: its own setting, or its CPU stand-ins; with
    ``only``, just those of them (one table of a paper, e.g. 001's Table 3)."""
    key, paper = find_paper(name)
    configs = paper.stand_ins if stand_ins else paper.configs
    if not configs:
        raise ConfigError(f"paper {key} has no CPU stand-in: its own configs are the ones to run (advx reproduce {key})")
    unknown = [c for c in only if c not in configs]
    if unknown:
        raise ConfigError(f"--only {unknown[0]}: not a {'CPU stand-in' if stand_ins else 'config'} of paper {key}; "
                          f"its {'stand-ins' if stand_ins else 'configs'} are {', '.join(configs)}")
    return key, paper, tuple(c for c in configs if c in only) if only else configs


def config_overrides(path: Path, tiny: bool, overrides: list[str] | None) -> list[str]:
    """The ``--set`` overrides for one config: the smoke-test size with ``tiny``, then the user's."""
    return (tiny_overrides(path) if tiny else []) + list(overrides or [])


def plan(name: str, *, seeds: int = 1, tiny: bool = False, overrides: list[str] | None = None,
         stand_ins: bool = False, echo: Callable[[str], Any] = print, only: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """``advx reproduce PAPER --plan``: print what would run, config by config and seed by seed,
    with its estimated cost, and run nothing."""
    key, paper, configs = paper_configs(name, stand_ins, only)
    rows = []
    echo(f"paper {key}: {paper.title}; {len(configs)} config(s) x {seeds} seed(s), nothing is run "
         f"(cost: attacks as if every sample survived every step, a defence chain's own passes not counted; "
         f"GPU-hours on one H200 at the FLOP rate of ResNet-18's measured PGD, capped at a small network's)")
    for stem in configs:
        path = EXAMPLES / f"{stem}.toml"
        sets = config_overrides(path, tiny, overrides)
        row = plan_config(path, sets)
        rows.append(row)
        if "why" in row:
            echo(f"  {stem}: not estimated: {row['why']}")
            continue
        echo(f"  {stem}: {row['data']}, train {row['train']:,}, test {row['test']:,}, {row['models']} model(s), "
             f"{row['cells']} cells; {row['train_passes'] + row['eval_passes']:.3g} passes "
             f"({row['train_passes']:.3g} training), about {row['gpu_hours']:.2g} GPU-hours per seed")
        for seed in range(seeds):
            echo(f"    seed {seed}: advx run {path.relative_to(EXAMPLES.parent)}"
                 + "".join(f" --set {s}" for s in [*sets, f"experiment.seed={seed}"]))
    total = sum(r.get("gpu_hours", 0) for r in rows) * seeds
    echo(f"about {total:.2g} GPU-hours in all" + (" (configs not estimated excluded)"
                                                  if any("why" in r for r in rows) else ""))
    return rows


def reproduce(name: str, *, tiny: bool = False, overrides: list[str] | None = None, device: str | None = None,
              out_dir: Path = Path("runs/reproduce"), echo: Callable[[str], Any] = print,
              stand_ins: bool = False, seeds: int = 1, only: tuple[str, ...] = ()) -> dict[str, str]:
    """Run every config of paper ``name`` (its CPU stand-ins instead with ``stand_ins``; ``only``
    those named); return {config: "done" | "skipped: why"}."""
    from advx import load_experiment
    from advx.evaluation.report import write_report

    key, paper, configs = paper_configs(name, stand_ins, only)
    if not EXAMPLES.is_dir():
        raise ConfigError(f"{EXAMPLES}: the examples folder is not here; run advx reproduce from a clone of the "
                          f"repository")
    kind = "CPU stand-in" if stand_ins else "config"
    echo(f"paper {key}: {paper.title} ({paper.plugin}); {len(configs)} {kind}(s){', tiny' if tiny else ''}"
         + ("" if stand_ins or not paper.stand_ins else
            f"; its CPU stand-ins ({', '.join(paper.stand_ins)}) run with --stand-ins"))
    outcome = {}
    runs = [(stem, seed) for stem in configs for seed in range(seeds)]
    for i, (stem, seed) in enumerate(runs, 1):
        path = EXAMPLES / f"{stem}.toml"
        sets = config_overrides(path, tiny, overrides)
        tag = f"{stem}-tiny" if tiny else stem
        if seeds > 1:  # one fixed test subset (data.subset_seed) judges every training seed
            sets.append(f"experiment.seed={seed}")
            tag, stem = f"{tag}-seed{seed}", f"{stem} seed {seed}"
        echo(f"[{i}/{len(runs)}] {path.name}{' ' + ' '.join('--set ' + s for s in sets) if sets else ''}")
        start = time.perf_counter()
        try:
            results = load_experiment(path, sets).run(out_dir / f"{tag}.h5", device=device)
        except DatasetNotFoundError as exc:
            outcome[stem] = f"skipped: {exc}"
            echo(f"  skipped: {exc}")
            continue
        written = write_report(results, out_dir / f"{tag}_report",
                               command=f"advx reproduce {name}{' --tiny' if tiny else ''}"
                                       f"{f' --seeds {seeds}' if seeds > 1 else ''}"
                                       + "".join(f" --only {c}" for c in only))
        outcome[stem] = "done"
        echo(f"  done in {time.perf_counter() - start:.0f} s: {out_dir / f'{tag}.h5'}, report in {written[0].parent}")
    return outcome
