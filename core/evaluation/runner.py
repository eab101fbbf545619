"""The cell runner: evaluates one planned cell of the grid chunk by chunk into the run file.

A cell's threat model (``advx.evaluation.threat_models``) supplies its adversarial points: from the
oblivious cache (crafted once per trained model and attack, reused by every defence), from the
transfer source, crafted on the defended pipeline (adaptive, with EOT and BPDA) or by querying it
(black-box). The runner scores every cell the same way, on the deployed pipeline with its
evaluation draws, and stores the cell's own result: no cell borrows another's points. Attacks run on
batches as large as ``batch_size`` allows, across seed blocks: every draw comes from the sample's
own stream (``advx.streams``), so a sample's numbers do not depend on the batch, chunk, block,
world size or free memory, and a resumed or sharded run gives the same numbers. Samples the
pipeline already gets wrong on clean input are not attacked and never count as robust.
"""

from __future__ import annotations

import hashlib
import json
import time
from contextlib import nullcontext
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from advx import interrupt, ledger, streams
from advx.attack_context import final_points
from advx.batching import auto_batch_size
from advx.config import ExperimentConfig
from advx.data.bundle import DataBundle, as_float
from advx.defense import build_defended, reseed
from advx.progress import BatchProgress, progress, tracking
from advx.streams import SampleStreams, derive_key

from .cells import CLEAN, NONE, Cell
from .counting import CountingModel
from .plan import Plan, PlannedCell
from .sanity import SanityLog
from .store import RunStore
from .threat_models import Crafted, Oblivious, Transfer


class CellRunner:
    """Evaluates planned cells chunk by chunk, sharing the oblivious adversarial cache."""

    def __init__(self, cfg: ExperimentConfig, plan: Plan, store: RunStore, data: DataBundle, test_index: torch.Tensor,
                 models: dict[str, CountingModel], device: torch.device, lo: int, hi: int, block: int, *,
                 train_index: torch.Tensor, cache_dir: Any) -> None:
        self.cfg, self.plan, self.store, self.data, self.models, self.device = cfg, plan, store, data, models, device
        self.lo, self.hi = lo, hi  # the sample range this process evaluates (all of it unless sharded)
        # rows through the model while crafting, and those no sample's ledger owned (reset per chunk)
        self.craft_rows, self.unattributed = [0, 0], [0, 0]
        self.test_index = test_index.to(device)
        self.x = as_float(data.x_test)
        self.y = data.y_test
        ev = self.cfg.evaluate
        self.chunk = ev.chunk_size
        self.block = block  # samples per random stream (``seed_block``)
        self.rows = max(1, self.chunk // block) * block  # samples per resumable step: whole blocks
        self._batch: dict[tuple[str, str], int] = {}
        self.autocast = torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.cfg.experiment.precision == "bf16")
        self.sanity = SanityLog()
        self.bar: Any = None  # the running cell's progress over samples
        self._defended: dict[tuple[str, str], nn.Module] = {}
        #: what every defence is given (protocols.py: InferenceDefense): clean training data for
        #: MI-OL's pool or a classifier fitted at wrap time, which caches under ``cache_dir``
        self.defense_context = {"train_x": data.x_train, "train_y": data.y_train, "num_classes": data.num_classes,
                                "train_index": train_index, "seed": self.cfg.experiment.seed, "cache_dir": cache_dir}

    def defended(self, train: str, defense: str) -> nn.Module:
        """The pipeline (train, defense), built once: ``threat_models.attacked`` switches it between
        evaluation draws (``repeats``) and attack draws (EOT, BPDA)."""
        key = (train, defense)
        if key not in self._defended:
            d = self.plan.defense(train, defense)
            self._defended[key] = build_defended(self.models[train], d.chain, repeats=d.repeats, eot=d.eot,
                                                 context=self.defense_context)
        return self._defended[key]

    def pipeline(self, cell: PlannedCell) -> nn.Module:
        """The deployed pipeline of ``cell``'s trained model and defence."""
        return self.defended(cell.cell.train, cell.cell.defense)

    def batch_for(self, train: str, defense: str) -> int:
        """``evaluate.batch_size``, or with "auto" the largest that fits the free device memory."""
        size = self.cfg.evaluate.batch_size
        if size != "auto":
            return size
        if (train, defense) not in self._batch:
            draws = self.plan.defense(train, defense).draws
            self._batch[(train, defense)] = auto_batch_size(self.models[train].model, self.x[:1], draws)
        return self._batch[(train, defense)]

    def cached(self, train: str, attack_label: str, start: int, stop: int) -> Crafted:
        """Rows [start, stop) of the cached adversarial examples of (model, attack) — crafted
        once on the undefended model ``train``, reused by every defence (and, for the transfer
        threat model, by every other trained model) — with the attack's per-sample records, and
        the forward and backward passes spent crafting in this call (0 when all was cached): the
        cell that crafts them records them."""
        cell = Cell(train, NONE, attack_label, Oblivious.name)
        path = f"adversarials/{cell.key()}"
        undefended = PlannedCell(cell, self.plan.defense(train, NONE), self.plan.attack(attack_label))
        passes = [0, 0]
        while self.lo + self.store.n_done(path) < stop:
            s = self.lo + self.store.n_done(path)
            e = min(s + self.rows, self.hi)
            mask = self.clean_correct(train, NONE, s, e)
            t0 = time.perf_counter()
            x_adv, logs, fw, bw = self.craft(undefended, self.models[train], s, e, mask, None,
                                             final=self.scored_where_crafted())
            self.store.append(path, {"x_adv": x_adv.cpu().numpy().astype(np.float32), **logs}, chunk=self.chunk,
                              extra_attrs={"seconds": time.perf_counter() - t0, "forwards": fw, "backwards": bw,
                                           "crafted": e - s})
            passes[0] += fw
            passes[1] += bw
        rows = {name: self.store.read_rows(path, name, start - self.lo, stop - self.lo)
                for name in self.store.names(path)}
        return torch.from_numpy(rows.pop("x_adv")).to(self.device), rows, passes[0], passes[1]

    def craft(self, cell: PlannedCell, target_model: nn.Module, s: int, e: int, attack_mask: torch.Tensor,
              purpose: str | None, final: bool = False) -> Crafted:
        """Attack ``target_model`` on the rows of [s, e) that ``attack_mask`` marks (the others keep
        their clean input), in batches of ``batch_for`` rows that span seed blocks: every draw comes
        from the sample's own stream (``advx.streams``, keyed by run seed, model, attack and row), so
        the batching never moves a number. ``purpose`` (e.g. "eot") reseeds a randomized pipeline
        for this cell. Every batch is checked against the attack's budget before it is kept. The
        passes are counted on the cell's trained model."""
        train, attack_label = cell.cell.train, cell.cell.attack
        spec, attack, budget = cell.attack.spec, cell.attack.attack, cell.attack.budget
        counter = self.models[train]
        batch = self.batch_for(train, cell.cell.defense)  # probes the raw model: not counted
        seed = self.cfg.experiment.seed
        base = derive_key(seed, train, attack_label)
        if purpose is not None:
            reseed(target_model, chunk_seed(seed, cell.cell.key(), purpose))
        counter.take()
        rows0 = (counter.forward_rows, counter.backward_rows)
        x_adv = self.x[s:e].clone()
        todo = attack_mask.nonzero().flatten()
        logs: dict[str, np.ndarray] = {}
        for i in range(0, len(todo), batch):
            idx = todo[i:i + batch]
            rows = idx + s  # rows of the test set: the streams' keys
            g = SampleStreams.for_rows(base, rows)
            x, y = self.x[rows], self.y[rows]
            start = self.bar.n if self.bar is not None else 0
            listen = tracking(BatchProgress(self.bar, start, len(idx))) if self.bar is not None else nullcontext()
            with ledger.tally(len(idx)) as spent:  # every pass's rows, charged to the samples they carried
                target = pick_targets(spec.target, self.models[train], x, y, self.data.num_classes, g)
                if not getattr(attack, "per_sample_streams", False):  # a plugin drawing from torch.Generator
                    g = torch.Generator().manual_seed(chunk_seed(seed, train, attack_label, int(rows[0])))
                with listen, final_points(final):  # the bar moves within the batch; final: fooled samples may stop
                    out, log = run_attack(attack, target_model, x, y, target, len(idx), g, self.autocast)
            budget.check(attack_label, getattr(attack, "bounds", (0.0, 1.0)), x, out)  # before any number is kept
            x_adv[idx] = out.to(x_adv)
            log = {**log, "craft_forwards": spent.forward.numpy().astype(np.int32),
                   "craft_backwards": spent.backward.numpy().astype(np.int32)}
            self.unattributed[0] += spent.unattributed["forward"]
            self.unattributed[1] += spent.unattributed["backward"]
            for k, v in log.items():
                if k not in logs:
                    logs[k] = np.full((e - s, *v.shape[1:]), getattr(attack, "skipped_log", {}).get(k, 0),
                                      dtype=v.dtype)
                logs[k][idx.cpu().numpy()] = v
            if self.bar is not None:
                self.bar.n = start + len(idx)
                self.bar.refresh()
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        fw, bw = counter.take()
        self.craft_rows[0] += counter.forward_rows - rows0[0]
        self.craft_rows[1] += counter.backward_rows - rows0[1]
        return x_adv, logs, fw, bw

    def scored_where_crafted(self) -> bool:
        """The cached (oblivious) points are scored on the model they were crafted on only: no
        defence but ``none`` and no transfer cell reuses them (``advx eval``'s standard evaluation)."""
        return all(d == NONE for _, d in self.plan.defenses) and Transfer.name not in self.cfg.evaluate.modes

    def deterministic(self, train: str, defense: str) -> bool:
        """The pipeline gives one output per input: no randomized defence, and its clean cell's
        check saw no change between two identical calls."""
        if self.plan.defense(train, defense).randomized:
            return False
        path = f"cells/{Cell(train, defense, CLEAN, CLEAN).key()}"
        return not (self.store.has(path) and self.store.attrs(path).get("unstable"))

    def clean_correct(self, train: str, defense: str, s: int, e: int) -> torch.Tensor:
        """Which rows of [s, e) the pipeline (train, defense) classifies correctly without attack:
        read from its clean cell when that is stored, else evaluated exactly as the clean cell does."""
        key = Cell(train, defense, CLEAN, CLEAN).key()
        path = f"cells/{key}"
        if self.store.has(path) and self.store.n_done(path) >= e - self.lo:
            ok = self.store.read_rows(path, "correct", s - self.lo, e - self.lo)
            return torch.from_numpy(np.asarray(ok, dtype=bool)).to(self.device)
        model = self.defended(train, defense)
        pred, _ = self.evaluate(model, train, defense, self.x[s:e], self.y[s:e], self.batch_for(train, defense))
        return pred == self.y[s:e]

    def evaluate(self, model: nn.Module, train: str, defense: str, x: torch.Tensor, y: torch.Tensor, batch: int,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions and losses of the deployed pipeline (train, defense) on ``x``. A randomized
        defence takes evaluation draws 0 … repeats − 1 per image, keyed by its content and the
        pipeline (not the cell): one image gets one prediction in every cell, and neither the batch
        nor the subset moves a number; no attack ever queried these draws."""
        reseed(model, chunk_seed(self.cfg.experiment.seed, train, defense, "eval"))
        return predict(model, x, y, batch, self.autocast)

    def run(self, cell: PlannedCell, order: int) -> None:
        path = f"cells/{cell.cell.key()}"
        if self.store.has(path) and self.store.attrs(path).get("status") == "done":
            return
        first = {} if self.store.has(path) else {"started": time.time()}  # one write: a kill never leaves half
        self.store.set_attrs(path, **first, spec=cell.cell.spec(), status="running", order=order, **cell.facts())
        if cell.threat is not None:
            cell.threat.prepare(self, cell)
        first = self.lo + self.store.n_done(path)
        c = cell.cell
        self.bar = None if cell.clean else progress(
            total=self.hi - first, unit="sample",
            desc=f"cell {order + 1}/{len(self.plan.cells)} {c.train}/{c.defense}/{short(c.attack)} ({c.mode})")
        try:
            for s in range(first, self.hi, self.rows):
                self.chunk_step(cell, path, s)
                if self.bar is not None:  # absolute: a chunk whose adversarials were cached crafts nothing
                    self.bar.n = min(s + self.rows, self.hi) - first
                    self.bar.refresh()
        finally:
            if self.bar is not None:
                self.bar.close()
            self.bar = None
        self.store.set_attrs(path, status="done")

    def chunk_step(self, cell: PlannedCell, path: str, s: int) -> None:
        """Evaluate rows [s, s + rows) of ``cell`` and append them to the store."""
        e = min(s + self.rows, self.hi)
        x, y = self.x[s:e], self.y[s:e]
        train, defense = cell.cell.train, cell.cell.defense
        counter = self.models[train]
        t0 = time.perf_counter()
        rows0 = (counter.forward_rows, counter.backward_rows)  # samples carried, not only batched calls
        fw = bw = 0
        logs: dict[str, np.ndarray] = {}
        model = self.pipeline(cell)
        # a sample the pipeline gets wrong on clean input is broken already: never attacked, never robust
        clean_ok = None if cell.clean else self.clean_correct(train, defense, s, e)
        self.craft_rows, self.unattributed = [0, 0], [0, 0]
        if cell.threat is None:
            x_adv = x
            if s == self.lo:  # before the reseed: the checks' draws never move the numbers
                facts = self.sanity.check_cell(cell, model, x, y, self.autocast, modes=tuple(self.cfg.evaluate.modes),
                                               eot=self.plan.eot_on(train, defense))
                self.store.set_attrs(path, **facts)
        else:
            x_adv, logs, fw, bw = cell.threat.adversarials(self, cell, s, e, clean_ok)
            x_adv, over = cell.attack.budget.enforce(x, x_adv) if cell.attack.budget.minimal else (x_adv, None)
            if over is not None and cell.attack.budget.bounded:
                logs["over_budget"] = over.cpu().numpy()  # found a point, but beyond the budget: scored clean
        batch = self.batch_for(train, defense)
        counter.take()
        pred, loss = self.evaluate(model, train, defense, x_adv, y, batch)
        efw, ebw = counter.take()
        arrays = {**per_sample_arrays(self.test_index[s:e], x, x_adv, y, pred, loss), **logs}
        if clean_ok is not None:
            arrays["correct"] = arrays["correct"] & clean_ok.cpu().numpy()
        if self.cfg.evaluate.save_adversarials and not cell.clean:
            arrays["x_adv"] = x_adv.cpu().numpy().astype(np.float32)
        self.store.append(path, arrays, chunk=self.chunk,
                          extra_attrs={"seconds": time.perf_counter() - t0, "forwards": fw + efw,
                                       "backwards": bw + ebw,
                                       "forward_rows": counter.forward_rows - rows0[0],
                                       "backward_rows": counter.backward_rows - rows0[1],
                                       # the per-sample ledger (craft_forwards, ...) adds up to these
                                       "craft_forward_rows": self.craft_rows[0],
                                       "craft_backward_rows": self.craft_rows[1],
                                       "unattributed_forward_rows": self.unattributed[0],
                                       "unattributed_backward_rows": self.unattributed[1]})
        interrupt.check()  # a stop whose exception was swallowed (weakref callback) ends here


def short(label: str, width: int = 32) -> str:
    """A long attack label (``autoattack(eps=0.03,steps=30)``) cut to fit beside a bar."""
    return label if len(label) <= width else label[:width - 3] + "..."


def chunk_seed(seed: int, *parts: Any) -> int:
    h = hashlib.sha256(json.dumps([seed, *parts], default=str).encode()).digest()
    return int.from_bytes(h[:6], "little")


def pick_targets(kind: str, model: nn.Module, x: torch.Tensor, y: torch.Tensor, num_classes: int,
                 g: Any) -> torch.Tensor | None:
    """Targets for targeted attacks: a random other class, or the least-likely class."""
    if kind == "none":
        return None
    if kind == "least-likely":
        with torch.no_grad():
            return model(x).argmin(1)
    shift = streams.integers(g, 1, num_classes, (len(y),), y.device)
    return (y + shift) % num_classes


def predict(model: nn.Module, x: torch.Tensor, y: torch.Tensor, batch_size: int,
            autocast: Any) -> tuple[torch.Tensor, torch.Tensor]:
    """Predictions and per-sample CE loss of ``model`` on ``x`` (batched, no grad unless the
    defence asks for it internally)."""
    preds, losses = [], []
    with torch.no_grad():
        for i in range(0, len(x), batch_size):
            with autocast:
                logits = model(x[i:i + batch_size]).float()
            preds.append(logits.argmax(1))
            losses.append(F.cross_entropy(logits, y[i:i + batch_size], reduction="none"))
    return torch.cat(preds), torch.cat(losses)


def per_sample_arrays(index: torch.Tensor, x: torch.Tensor, x_adv: torch.Tensor, y: torch.Tensor,
                      pred: torch.Tensor, loss: torch.Tensor) -> dict[str, np.ndarray]:
    delta = (x_adv - x).flatten(1).float()
    return {
        "index": index.cpu().numpy(), "label": y.cpu().numpy(), "prediction": pred.cpu().numpy(),
        "correct": (pred == y).cpu().numpy(), "linf": delta.abs().amax(1).cpu().numpy().astype(np.float32),
        "l2": delta.norm(dim=1).cpu().numpy().astype(np.float32), "l1": delta.abs().sum(1).cpu().numpy().astype(np.float32),
        "loss": loss.cpu().numpy().astype(np.float32),
    }


def run_attack(attack: Callable, model: nn.Module, x: torch.Tensor, y: torch.Tensor, target: torch.Tensor | None,
               batch_size: int, g: torch.Generator, autocast: Any) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
    """The adversarial batch and the attack's per-sample records (``attack_with_log``, if it has one)."""
    out, logs = [], {}
    with_log = getattr(attack, "attack_with_log", None)
    for i in range(0, len(x), batch_size):
        t = None if target is None else target[i:i + batch_size]
        xs, ys = x[i:i + batch_size], y[i:i + batch_size]
        with autocast:
            if with_log is None:
                out.append(attack(model, xs, ys, target=t, generator=g))
                continue
            x_adv, log = with_log(model, xs, ys, target=t, generator=g)
        out.append(x_adv)
        for k, v in log.items():
            logs.setdefault(k, []).append(v.cpu().numpy())
    return torch.cat(out).float(), {k: np.concatenate(v) for k, v in logs.items()}
