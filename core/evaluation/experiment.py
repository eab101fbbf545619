"""Run an experiment: data, trained models (cached), every cell chunk by chunk into HDF5.

Re-running the same command resumes: finished models come from the checkpoint cache,
finished cells and chunks are skipped, and each seed block's randomness is seeded from
(seed, cell, block start), so a resumed run gives the same numbers as an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import shutil
import warnings
from pathlib import Path
from typing import Any

import attrs
import torch

from advx.config import AttackSpec, ComponentSpec, ExperimentConfig, load_config
from advx.data.bundle import DataBundle, check_values
from advx.data.splits import fold_ids, stratified_split, stratified_subset
from advx.distributed import Dist, existing_shards, shard_bounds, shard_paths
from advx.errors import AdvxError, AdvxWarning, ConfigError, StoreError
from advx.invocation import invocation
from advx.progress import progress
from advx.training.models import code_of, fit_classes, load_pretrained, obtain_models, resolve_training, weights_key

from advx.batching import seed_block

from .budget import NORMS, Budget, check_budget
from .counting import CountingModel
from .plan import make_plan, randomized
from .runner import CellRunner
from .results import RunResults
from .sanity import SanityLog
from .threat_models import Adaptive, Transfer
from .store import RunStore, adopt_header, check_writable, config_of, merge_shards


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise AdvxError("device 'cuda' requested but CUDA is not available; use --device cpu")
    return torch.device(name)


def versions(registry: Any, code: dict[str, str] | None = None) -> dict[str, str]:
    """torch's and every plugin distribution's version, and the source digest of each plugin
    package the run uses (``"<package> source"``)."""
    out = {"torch": torch.__version__}
    for row in registry.plugins():
        out[row["distribution"]] = row["version"]
    out.update({f"{pkg} source": digest for pkg, digest in (code or {}).items()})
    out["advx commit"] = source_commit()
    return out


def machine() -> str:
    """The machine a run used, in one line (CPU model, cores, torch threads, GPU): a stored time
    means little without it."""
    import platform

    cpu = platform.processor() or platform.machine()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    text = f"{cpu}, {os.cpu_count()} cores, {torch.get_num_threads()} torch threads, {platform.system()}"
    if torch.cuda.is_available():
        text += ", " + ", ".join(torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count()))
    return text


def source_commit() -> str:
    """The git commit of the advx checkout a run used, "+dirty" when it had uncommitted changes,
    or "not a git checkout" (an installed wheel): a stored run names the code that made it."""
    import subprocess

    here = Path(__file__).resolve().parent
    try:
        head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True, text=True, timeout=10)
        if head.returncode != 0:
            return "not a git checkout"
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=here,
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "not a git checkout"
    return head.stdout.strip() + ("+dirty" if dirty else "")


def randomized_attacks(cfg: ExperimentConfig, attacks: dict[str, Any],
                       defenses: dict[tuple[str, Any], list[Any]]) -> tuple[AttackSpec, ...]:
    """The attacks ``evaluate.randomized_attack`` adds (issue #36): AutoAttack's rand version
    (APGD-CE + APGD-DLR, ``randomized_steps`` steps with EOT over ``randomized_eot`` draws) against
    every randomized pipeline, adaptive mode only, once per linf/l2/l1 budget of the configured attacks."""
    ev = cfg.evaluate
    if ev.randomized_attack == "none" or Adaptive.name not in ev.modes:
        return ()
    drawing = tuple(dict.fromkeys(label for (label, _), chain in defenses.items() if randomized(chain)))
    budgets = {}
    for spec in cfg.attacks:
        b = Budget.of(attacks[spec.label], spec.budget)
        if b.bounded and not b.minimal and b.norm in NORMS:
            budgets.setdefault((b.norm, b.eps), spec.component.params.get("eps", b.eps))
    if not drawing or not budgets:
        return ()
    out = []
    for (norm, _), eps in budgets.items():
        label = "AutoAttack-rand" if len(budgets) == 1 else f"AutoAttack-rand ({norm} {eps})"
        params = {"version": "rand", "eps": eps, "norm": norm, "eot": ev.randomized_eot, "steps": ev.randomized_steps}
        out.append(AttackSpec(label, ComponentSpec("autoattack", params, "evaluate.randomized_attack"),
                              defenses=drawing, modes=(Adaptive.name,)))
    return tuple(out)


class Experiment:
    """One experiment config bound to a registry. ``run()`` does what ``advx run`` does."""

    def __init__(self, config: ExperimentConfig, registry: Any = None) -> None:
        from advx.registry import Registry

        self.config = config
        self.registry = registry if registry is not None else Registry()
        self.injected: tuple[AttackSpec, ...] = ()
        self.components = self.resolve()

    @classmethod
    def load(cls, source: str | Path | dict, overrides: list[str] | None = None, registry: Any = None) -> "Experiment":
        return cls(load_config(source, overrides), registry)

    def resolve(self) -> dict[str, Any]:
        """Create every component once so a bad name or parameter fails before any training."""
        r, c = self.registry, self.config
        out: dict[str, Any] = {"dataset": r.create("dataset", c.data.dataset.name, c.data.dataset.params, where="data"),
                               **resolve_training(c, r)}  # the model factory, recipes and image augmentations
        for t in c.trains:
            for s, aug in zip(t.settings.augment, out["recipes"][t.label]):
                attack = getattr(aug, "attack", None)  # an attack a recipe crafts with: check it before training
                if isinstance(attack, str) and isinstance(getattr(aug, "params", None), dict):
                    crafted = r.create("attack", attack, aug.params, where=f"{s.where}.params")
                    if getattr(crafted, "minimal", False):
                        raise ConfigError(f"{s.where}.attack: {attack!r} is a minimal-norm attack (no eps budget), so "
                                          f"training on its points trains on unbounded perturbations; pick a "
                                          f"budgeted attack such as pgd")
                    check_budget(crafted, f"{s.where}.params")
        out["attacks"] = {a.label: r.create("attack", a.component.name, a.component.params, where=a.component.where)
                          for a in c.attacks}
        for a in c.attacks:
            check_budget(out["attacks"][a.label], a.component.where, budget=a.budget)
            if a.target != "none" and not getattr(out["attacks"][a.label], "supports_target", True):
                raise ConfigError(f"{a.component.where}.target: attack {a.component.name!r} has no targeted variant "
                                  f"(target = {a.target!r}); drop target or pick a targeted attack such as pgd")
        out["defenses"] = {(d.label, d.trains): [r.create("inference_defense", s.name, s.params, where=s.where)
                                                 for s in d.chain] for d in c.defenses}
        self.injected = randomized_attacks(c, out["attacks"], out["defenses"])
        if self.injected:  # every randomized pipeline also meets AutoAttack's rand version, adaptively
            self.config = c = attrs.evolve(c, attacks=c.attacks + self.injected)
            for a in self.injected:
                out["attacks"][a.label] = r.create("attack", a.component.name, a.component.params,
                                                   where=a.component.where)
        out["metrics"] = [r.create("evaluator", m.name, m.params, where=m.where) for m in c.evaluate.metrics]
        out["gradient_free"] = frozenset(label for label, a in out["attacks"].items()
                                         if getattr(a, "gradient_free", False))
        out["threat_models"] = {name: r.create("threat_model", name) for name in r.names("threat_model")}
        for i, mode in enumerate(c.evaluate.modes):  # an unknown name fails here, with what exists
            r.get("threat_model", mode, where=f"evaluate.modes[{i}]")
            out["threat_models"][mode].check_config(c, out["attacks"])
        if c.evaluate.transfer_from is not None and Transfer.name not in c.evaluate.modes:
            raise ConfigError(f"evaluate.transfer_from is set ({c.evaluate.transfer_from!r}) but 'transfer' is not in "
                              f"evaluate.modes {list(c.evaluate.modes)}; add it or remove transfer_from")
        return out

    # ------------------------------------------------------------------ data
    def prepare_data(self, device: torch.device) -> tuple[DataBundle, torch.Tensor, torch.Tensor]:
        """Load, subset and place the data; return (bundle, test dataset indices, train subset)."""
        c, seed = self.config.data, self.config.experiment.seed
        data: DataBundle = self.components["dataset"].load()
        check_values(data, self.components["dataset"])
        test_index = torch.arange(len(data.y_test))
        if c.test_limit is not None and c.test_limit > len(test_index):
            warnings.warn(f"data.test_limit: {c.test_limit} is more than the {len(test_index)} test samples of "
                          f"{c.dataset.name}; using all of them", AdvxWarning, stacklevel=2)
        if c.test_limit is not None and c.test_limit < len(test_index):
            test_index = stratified_subset(data.y_test, c.test_limit / len(test_index), c.subset_seed + 1)[: c.test_limit]
        train_index = torch.arange(len(data.y_train))
        x_val = y_val = None
        if c.val_fraction > 0:
            rest, held = stratified_split(data.y_train, c.val_fraction, seed + 2)
            x_val, y_val, train_index = data.x_train[held], data.y_train[held], rest
        if c.train_fraction < 1:
            sub = stratified_subset(data.y_train[train_index], c.train_fraction, seed + 3)
            train_index = train_index[sub]
        bundle = DataBundle(data.x_train, data.y_train, data.x_test[test_index], data.y_test[test_index],
                            data.classes, x_val, y_val).to(device)
        return bundle, test_index, train_index

    # ------------------------------------------------------------------ run
    def default_output(self) -> Path:
        """Where a run goes without ``--out``: ``experiment.output`` with a short hash of the whole
        config (``runs/quickstart-1a2b3c.h5``), so editing one value starts a new run beside the
        old one and the same command resumes. A run file already at ``experiment.output`` (made
        before hashed names) is resumed when its config matches."""
        base = Path(self.config.experiment.output)
        digest = self.config_hash()
        if base.is_file() and not base.is_symlink() and _config_hash_of(base) == digest:
            return base
        return base.with_name(f"{base.stem}-{digest[:6]}{base.suffix}")

    def config_hash(self) -> str:
        """sha256 of the config and of the weights files it names by content: a checkpoint replaced
        under the same path is a new run, never a resume of the old one's cells."""
        files = weights_key(self.config).get("files")
        text = self.config.text() + (json.dumps(files, sort_keys=True) if files else "")
        if self.injected:  # the default rand-version cells are part of what the run computes
            text += json.dumps([[a.label, a.component.params, a.defenses] for a in self.injected], default=str)
        text += json.dumps(self.plugin_code(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()

    def plugin_code(self) -> dict[str, str]:
        """Digest of each plugin package the experiment uses: finished cells made by other code of
        a plugin are never resumed into this run (its hash, and so its default file, differ)."""
        c = self.config
        used = [("model", c.model.name), ("dataset", c.data.dataset.name)]
        used += [("training_augmentation", a.name) for t in c.trains for a in t.settings.augment]
        used += [("training_augmentation", name) for name in self.components["image_augment"] if name != "none"]
        used += [("attack", a.component.name) for a in c.attacks]
        used += [("inference_defense", s.name) for d in c.defenses for s in d.chain]
        used += [("evaluator", m.name) for m in c.evaluate.metrics]
        return code_of(self.registry, used)

    def run(self, output: str | Path | None = None, *, device: str | None = None, overwrite: bool = False,
            cache_dir: str | Path | None = None, shard: tuple[int, int] | None = None) -> RunResults | None:
        """Run (or resume) every cell into ``output`` and return the results.

        Under ``torchrun`` the ranks train together and each evaluates one shard of the test
        samples; rank 0 merges the shards and returns the results, other ranks return None.
        ``shard=(r, w)`` runs only shard r of w in this process (no process group): the shard file
        is written and None returned; ``advx merge`` joins the shards once all are finished.
        """
        cfg = self.config
        out = Path(output) if output else self.default_output()
        check_writable(out)  # before any data loads or model trains
        dev = resolve_device(device or cfg.experiment.device)
        if shard is not None:
            if not 0 <= shard[0] < shard[1]:
                raise AdvxError(f"shard {shard[0]}/{shard[1]}: expected 0 <= R < W")
            dist = Dist(rank=shard[0], world=shard[1])
        else:
            dist = Dist.from_env(dev.type)
            if dist.group and dev.type == "cuda":
                dev = torch.device("cuda", dist.local_rank)
                torch.cuda.set_device(dev)
        try:
            results = self._run(out, dev, dist, overwrite,
                                Path(cache_dir or cfg.experiment.cache_dir or out.parent / "cache"))
            if not output and dist.rank == 0:
                link_latest(Path(cfg.experiment.output), out)
            return results
        finally:
            if shard is None:
                dist.close()

    def _run(self, out: Path, dev: torch.device, dist: Dist, overwrite: bool, cache: Path) -> RunResults | None:
        cfg = self.config
        torch.manual_seed(cfg.experiment.seed)
        text = cfg.text()
        config_hash = self.config_hash()
        stamp = versions(self.registry, self.plugin_code())
        device_name = f"{dev.type}" + (f" ({torch.cuda.get_device_name(dev)})" if dev.type == "cuda" else "")
        if dist.sharded:
            device_name += f" x {dist.world} ranks"
        data, test_index, train_index = self.prepare_data(dev)  # bad data fails before a run file exists
        built = None
        if cfg.pretrained and getattr(self.components["dataset"], "num_classes", 0) is None:  # inferred from labels
            data, built = fit_classes(cfg, self.registry, data, self.components["model"])
        for a in cfg.attacks:
            check_budget(self.components["attacks"][a.label], a.component.where, tuple(data.x_test.shape[1:]),
                         a.budget)
        pretrained = load_pretrained(cfg, self.registry, data, dev, self.components["model"],
                                     built=built)  # and a bad checkpoint
        with contextlib.ExitStack() as stack:
            separate = dist.sharded and not dist.group  # one shard of a job run as separate processes
            main = stack.enter_context(RunStore(out, fresh=overwrite)) if dist.rank == 0 and not separate else None
            done: list[str] = []
            if main is not None:
                main.initialize(text, config_hash, stamp, device_name, overwrite=overwrite)
                done = [n for n in main.names("cells") if main.attrs(f"cells/{n}").get("status") == "done"]
            done = dist.broadcast(done)
            block = seed_block(len(data.y_test), cfg.evaluate.batch_size, dev.type)
            lo, hi = shard_bounds(len(data.y_test), block, dist.rank, dist.world)
            store = main
            if dist.sharded:
                store = stack.enter_context(RunStore(shard_paths(out, dist.world)[dist.rank], fresh=overwrite))
                store.initialize(text, config_hash, stamp, device_name, overwrite=overwrite)
                store.set_attrs("/", shard_rank=dist.rank, shard_world=dist.world, shard_lo=lo, shard_hi=hi)
            header = store if separate else main  # where the test split and model records go
            if header is not None and not header.has("test/index"):
                header.write_array("test/index", test_index.numpy())
                header.write_array("test/label", data.y_test.cpu().numpy())
                header.write_array("test/fold", fold_ids(data.y_test, cfg.data.splits, cfg.data.subset_seed).numpy())
            if header is not None and "machine" not in header.attrs("/"):  # a resume keeps the first start's
                header.set_attrs("/", machine=machine(), train_size=int(len(train_index)), command=invocation())
            record = None if header is None else functools.partial(record_model, header)
            models = obtain_models(cfg, self.registry, data, train_index, dev, cache, record=record, dist=dist,
                                   pretrained=pretrained, components=self.components)
            compiled = {k: torch.compile(m, backend=cfg.experiment.compile_backend) if cfg.experiment.compile else m
                        for k, m in models.items()}
            plan = make_plan(cfg, self.components)
            runner = CellRunner(cfg, plan, store, data, test_index,
                                {k: CountingModel(m) for k, m in compiled.items()}, dev, lo, hi, block,
                                train_index=train_index, cache_dir=cache)
            bar = progress(total=len(plan.cells), desc="cells" + (f" [rank {dist.rank}]" if dist.sharded else ""),
                           unit="cell", outer=True)
            for order, planned in enumerate(plan.cells):
                cell = planned.cell
                bar.set_postfix_str(f"{cell.train}/{cell.defense}/{cell.attack}/{cell.mode}")
                if cell.key() not in done:
                    runner.run(planned, order)
                bar.update(1)
            bar.close()
            if dist.sharded:
                store.close()  # release the shard so rank 0 can read it
                dist.barrier()
                if main is None:
                    return None  # rank > 0, or one shard of a separate-process job
                _, unfinished = merge_shards(main, shard_paths(out, dist.world))
                if unfinished:
                    raise AdvxError(f"shards of {out} are unfinished ({', '.join(unfinished[:3])} ...); rerun")
                shutil.rmtree(shard_paths(out, dist.world)[0].parent, ignore_errors=True)
            return self._metrics(main, runner.sanity, {"models": models, "data": data, "train_index": train_index,
                                                       "device": dev})

    def _metrics(self, store: RunStore, sanity: SanityLog, context: dict[str, Any]) -> RunResults:
        """Every evaluator's tables, written to the store, and the results to return."""
        results = RunResults.from_store(store)
        results.context = {**context, "registry": self.registry, "experiment": self}
        for metric in self.components["metrics"]:
            produced = metric.evaluate(results)
            store.set_attrs(f"metrics/{metric.name}", tables=[t.to_dict() for t in produced])
        sanity.check_monotone(results, self.config)
        sanity.check_threat_models(results, self.components["gradient_free"])
        earlier = json.loads(store.attrs("/").get("warnings", "[]"))
        # a resume skips the finished cells and so their checks: keep what the first run found
        store.set_attrs("/", warnings=list(dict.fromkeys([*earlier, *sanity.messages])))
        results = RunResults.from_store(store)
        results.context = {"models": context["models"], "data": context["data"]}
        return results


def record_model(store: RunStore, label: str, info: dict[str, Any]) -> None:
    """Record how model ``label`` was obtained, once: a resume that loads the same checkpoint
    again must not turn "trained in 152 s" into "cached, 0.004 s"."""
    path = f"models/{label}"
    if store.has(path) and store.attrs(path).get("hash") == info.get("hash"):
        return
    store.set_attrs(path, **info)


def _config_hash_of(path: Path) -> str | None:
    try:
        with RunStore(path, mode="r") as store:
            return str(store.f.attrs.get("config_hash"))
    except AdvxError:
        return None


def link_latest(link: Path, target: Path) -> None:
    """Point ``link`` (``runs/quickstart.h5``) at the newest run of that experiment, so
    ``advx report runs/quickstart.h5`` shows it; a real file there (an older run) is left alone."""
    if link == target or (link.exists() and not link.is_symlink()):
        return
    tmp = link.with_name(f".{link.name}.{os.getpid()}.link")
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target.name if target.parent == link.parent else target.resolve())
    tmp.replace(link)


def merge_run(run_file: str | Path, registry: Any = None, *, device: str | None = None) -> RunResults:
    """Join the shards of ``run_file`` (``advx run --shard R/W`` jobs, or a torchrun job stopped
    before its merge), then compute the metric tables; nothing finished is evaluated again."""
    run_file = Path(run_file)
    shards = existing_shards(run_file)
    if not shards:
        raise StoreError(f"{run_file}: no shards to merge (looked for {run_file}.shards/rank-*-of-*.h5)")
    with RunStore(run_file) as main:
        adopt_header(main, shards[0])
        _, unfinished = merge_shards(main, shards)
    if unfinished:
        raise StoreError(f"{run_file}: {len(unfinished)} group(s) are unfinished in some shard "
                         f"({', '.join(unfinished[:3])}); rerun the shard jobs, then merge again")
    results = Experiment(load_config(json.loads(config_of(run_file))), registry).run(run_file, device=device)
    shutil.rmtree(shards[0].parent, ignore_errors=True)
    return results
