"""The cell runner: evaluates one cell of the grid chunk by chunk into the run file.

A chunk's adversarials come from the oblivious cache (crafted once per trained model and attack,
reused by every defence), from the transfer source, or are crafted on the defended pipeline
(adaptive, with EOT and BPDA) or by querying it (black-box). Attacks run on batches as large as
``batch_size`` allows, across seed blocks: every draw comes from the sample's own stream
(``advx.streams``), so a sample's numbers do not depend on the batch, chunk, block, world size or
free memory, and a resumed or sharded run gives the same numbers. Samples the pipeline already
gets wrong on clean input are not attacked and never count as robust.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from advx import interrupt
from advx.batching import auto_batch_size
from advx.config import ExperimentConfig
from advx.data.bundle import DataBundle, as_float
from advx.defense import DefendedClassifier, build_defended, reseed, set_attacking
from advx.progress import progress
from advx.streams import SampleStreams, derive_key

from .cells import CLEAN, NONE, Cell, chunk_seed, per_sample_arrays, pick_targets, predict, run_attack
from .counting import CountingModel
from .plan import Plan
from .results import attack_budget
from .sanity import SanityLog
from .threat_model import check_threat_model
from .store import RunStore


class CellRunner:
    """Evaluates cells chunk by chunk, sharing the oblivious adversarial cache."""

    def __init__(self, cfg: ExperimentConfig, plan: Plan, store: RunStore, data: DataBundle, test_index: torch.Tensor,
                 models: dict[str, CountingModel], device: torch.device, lo: int, hi: int, block: int, *,
                 train_index: torch.Tensor, cache_dir: Any) -> None:
        self.cfg, self.plan, self.store, self.data, self.models, self.device = cfg, plan, store, data, models, device
        self.lo, self.hi = lo, hi  # the sample range this process evaluates (all of it unless sharded)
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
        """The pipeline (train, defense), built once: ``set_attacking`` switches it between
        evaluation draws (``repeats``) and attack draws (EOT, BPDA)."""
        key = (train, defense)
        if key not in self._defended:
            d = self.plan.defense(train, defense)
            self._defended[key] = build_defended(self.models[train], d.chain, repeats=d.repeats, eot=d.eot,
                                                 context=self.defense_context)
        return self._defended[key]

    def batch_for(self, train: str, defense: str) -> int:
        """``evaluate.batch_size``, or with "auto" the largest that fits the free device memory."""
        size = self.cfg.evaluate.batch_size
        if size != "auto":
            return size
        if (train, defense) not in self._batch:
            draws = self.plan.defense(train, defense).draws
            self._batch[(train, defense)] = auto_batch_size(self.models[train].model, self.x[:1], draws)
        return self._batch[(train, defense)]

    def oblivious(self, train: str, attack_label: str, start: int, stop: int,
                  ) -> tuple[torch.Tensor, dict[str, np.ndarray], int, int]:
        """Rows [start, stop) of the cached adversarial examples of (model, attack) — crafted
        once on the undefended model ``train``, reused by every defence (and, for the transfer
        threat model, by every other trained model) — with the attack's per-sample records, and
        the forward and backward passes spent crafting in this call (0 when all was cached): the
        cell that crafts them records them."""
        path = f"adversarials/{Cell(train, NONE, attack_label, 'oblivious').key()}"
        passes = [0, 0]
        while self.lo + self.store.n_done(path) < stop:
            s = self.lo + self.store.n_done(path)
            e = min(s + self.rows, self.hi)
            mask = self.clean_correct(train, NONE, s, e)
            x_adv, logs, seconds, fw, bw = self.craft(self.models[train], self.models[train], train, NONE,
                                                      attack_label, s, e, mask, bar=self.bar)
            self.store.append(path, {"x_adv": x_adv.cpu().numpy().astype(np.float32), **logs}, chunk=self.chunk,
                              extra_attrs={"seconds": seconds, "forwards": fw, "backwards": bw, "crafted": e - s})
            passes[0] += fw
            passes[1] += bw
        rows = {name: self.store.read_rows(path, name, start - self.lo, stop - self.lo)
                for name in self.store.names(path)}
        return torch.from_numpy(rows.pop("x_adv")).to(self.device), rows, passes[0], passes[1]

    def craft(self, target_model: nn.Module, counter: CountingModel, train: str, defense: str, attack_label: str,
              s: int, e: int, attack_mask: torch.Tensor, reseed_key: tuple[str, str] | None = None,
              bar: Any = None) -> tuple[torch.Tensor, dict[str, np.ndarray], float, int, int]:
        """Attack the rows of [s, e) that ``attack_mask`` marks (the others keep their clean input),
        in batches of ``batch_for`` rows that span seed blocks: every draw comes from the sample's
        own stream (``advx.streams``, keyed by run seed, model, attack and row), so the batching
        never moves a number. ``reseed_key`` (cell key, purpose) reseeds a randomized defence."""
        planned = self.plan.attack(attack_label)
        spec, attack = planned.spec, planned.attack
        batch = self.batch_for(train, defense)  # probes the raw model: not counted
        seed = self.cfg.experiment.seed
        base = derive_key(seed, train, attack_label)
        if reseed_key is not None:
            reseed(target_model, chunk_seed(seed, reseed_key[0], reseed_key[1]))
        counter.take()
        t0 = time.perf_counter()
        x_adv = self.x[s:e].clone()
        todo = attack_mask.nonzero().flatten()
        logs: dict[str, np.ndarray] = {}
        for i in range(0, len(todo), batch):
            idx = todo[i:i + batch]
            rows = idx + s  # rows of the test set: the streams' keys
            g = SampleStreams.for_rows(base, rows)
            x, y = self.x[rows], self.y[rows]
            target = pick_targets(spec.target, self.models[train], x, y, self.data.num_classes, g)
            if not getattr(attack, "per_sample_streams", False):  # a plugin drawing from torch.Generator
                g = torch.Generator().manual_seed(chunk_seed(seed, train, attack_label, int(rows[0])))
            out, log = run_attack(attack, target_model, x, y, target, len(idx), g, self.autocast)
            check_threat_model(attack, attack_label, x, out)  # before any number is kept
            x_adv[idx] = out.to(x_adv)
            for k, v in log.items():
                if k not in logs:
                    logs[k] = np.full(e - s, getattr(attack, "skipped_log", {}).get(k, 0), dtype=v.dtype)
                logs[k][idx.cpu().numpy()] = v
            if bar is not None:
                bar.update(len(idx))
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        fw, bw = counter.take()
        return x_adv, logs, time.perf_counter() - t0, fw, bw

    def transfer_source(self, cell: Cell) -> str | None:
        """The model whose cached (oblivious or transfer) adversarials an adaptive or black-box cell
        also tries, per sample: the undefended model itself when oblivious runs, else the transfer
        source; None for other cells or when neither threat model runs."""
        if cell.mode not in ("adaptive", "black-box") or cell.defense == NONE:
            return None
        modes = self.cfg.evaluate.modes
        if "oblivious" in modes:
            return cell.train
        return self.cfg.evaluate.transfer_from if "transfer" in modes else None

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
        defence draws per image, keyed by its content and the pipeline (not the cell): one image
        gets one prediction in every cell, and neither the batch nor the subset moves a number."""
        reseed(model, chunk_seed(self.cfg.experiment.seed, train, defense, "eval"))
        return predict(model, x, y, batch, self.autocast)

    def run(self, cell: Cell, order: int) -> None:
        path = f"cells/{cell.key()}"
        if self.store.has(path) and self.store.attrs(path).get("status") == "done":
            return
        first = {} if self.store.has(path) else {"started": time.time()}  # one write: a kill never leaves half
        self.store.set_attrs(path, **first, spec=cell.spec(), status="running", order=order)
        attack = self.plan.attacks[cell.attack].attack if cell.attack in self.plan.attacks else None
        if attack is not None:  # the threat model the headline worst case groups this cell under
            self.store.set_attrs(path, budget=attack_budget(attack))
        pipeline = self.defended(cell.train, cell.defense)  # what `advx audit` checks the EOT rule against
        self.store.set_attrs(path, eot=int(self.plan.defense(cell.train, cell.defense).eot),
                             randomized=any(isinstance(m, DefendedClassifier) and m.randomized
                                            for m in pipeline.modules()))
        members = getattr(attack, "members", None)
        if members:  # what the codes of a per-sample ``broken_by`` record mean
            self.store.set_attrs(path, members=list(members))
        counter = self.models[cell.train]
        first = self.lo + self.store.n_done(path)
        self.bar = None if cell.mode == CLEAN else progress(total=self.hi - first, desc="  samples", unit="sample")
        try:
            for s in range(first, self.hi, self.rows):
                self.chunk_step(cell, path, counter, s)
                if self.bar is not None:  # absolute: a chunk whose adversarials were cached crafts nothing
                    self.bar.n = min(s + self.rows, self.hi) - first
                    self.bar.refresh()
        finally:
            if self.bar is not None:
                self.bar.close()
            self.bar = None
        self.store.set_attrs(path, status="done")

    def chunk_step(self, cell: Cell, path: str, counter: CountingModel, s: int) -> None:
        """Evaluate rows [s, s + rows) of ``cell`` and append them to the store."""
        e = min(s + self.rows, self.hi)
        x, y = self.x[s:e], self.y[s:e]
        t0 = time.perf_counter()
        rows0 = (counter.forward_rows, counter.backward_rows)  # samples carried, not only batched calls
        fw = bw = 0
        logs: dict[str, np.ndarray] = {}
        # a sample the pipeline gets wrong on clean input is broken already: never attacked, never robust
        clean_ok = None if cell.mode == CLEAN else self.clean_correct(cell.train, cell.defense, s, e)
        if cell.mode == CLEAN:
            x_adv = x
        elif cell.mode == "oblivious":
            x_adv, logs, fw, bw = self.oblivious(cell.train, cell.attack, s, e)
        elif cell.mode == "transfer":  # crafted on the source model, unknown defence and weights
            x_adv, logs, fw, bw = self.oblivious(self.cfg.evaluate.transfer_from, cell.attack, s, e)
        elif cell.mode == "black-box":  # gradient-free: queries the deployed pipeline as evaluated
            model = self.defended(cell.train, cell.defense)
            x_adv, logs, _, fw, bw = self.craft(model, counter, cell.train, cell.defense, cell.attack, s, e,
                                                clean_ok, reseed_key=(cell.key(), "queries"), bar=self.bar)
        else:
            model = self.defended(cell.train, cell.defense)
            set_attacking(model, True)
            try:
                x_adv, logs, _, fw, bw = self.craft(model, counter, cell.train, cell.defense, cell.attack, s, e,
                                                    clean_ok, reseed_key=(cell.key(), "eot"), bar=self.bar)
            finally:
                set_attacking(model, False)
        model = self.defended(cell.train, cell.defense)
        if s == self.lo and cell.mode == CLEAN:  # before the reseed: the checks' draws never move the numbers
            eot = self.plan.defense(cell.train, cell.defense).eot
            # a wrapper that averages its own draws in every call (the distribution classifier) is EOT
            eot = max(eot, *(getattr(m, "averages_draws", 1) for m in model.modules()))
            # one pipeline: check_cell switches it to attack draws (EOT, BPDA) and back
            self.sanity.check_cell(cell, model, model, x, y, self.autocast,
                                   attacked_with_eot="adaptive" in self.cfg.evaluate.modes and eot > 1,
                                   modes=self.cfg.evaluate.modes)
        batch = self.batch_for(cell.train, cell.defense)
        counter.take()
        pred, loss = self.evaluate(model, cell.train, cell.defense, x_adv, y, batch)
        efw, ebw = counter.take()
        source = self.transfer_source(cell)
        taken = None
        if source is not None:  # adaptive never weaker than transfer: keep, per sample, whichever breaks it
            x_obl, _, ofw, obw = self.oblivious(source, cell.attack, s, e)
            survived = (pred == y).nonzero().flatten()  # only these can change: the pipeline's draws are per image
            taken = torch.zeros_like(pred, dtype=torch.bool)
            if len(survived):
                counter.take()
                obl_pred, obl_loss = self.evaluate(model, cell.train, cell.defense, x_obl[survived], y[survived], batch)
                tfw, tbw = counter.take()
                efw, ebw = efw + tfw, ebw + tbw
                won = obl_pred != y[survived]
                hit = survived[won]
                taken[hit] = True
                x_adv = x_adv.clone()
                x_adv[hit], pred[hit], loss[hit] = x_obl[hit], obl_pred[won], obl_loss[won]
            fw, bw = fw + ofw, bw + obw
        arrays = {**per_sample_arrays(self.test_index[s:e], x, x_adv, y, pred, loss), **logs}
        if taken is not None:
            arrays["from_transfer"] = taken.cpu().numpy()
        if clean_ok is not None:
            arrays["correct"] = arrays["correct"] & clean_ok.cpu().numpy()
        if self.cfg.evaluate.save_adversarials and cell.mode != CLEAN:
            arrays["x_adv"] = x_adv.cpu().numpy().astype(np.float32)
        self.store.append(path, arrays, chunk=self.chunk,
                          extra_attrs={"seconds": time.perf_counter() - t0, "forwards": fw + efw,
                                       "backwards": bw + ebw,
                                       "forward_rows": counter.forward_rows - rows0[0],
                                       "backward_rows": counter.backward_rows - rows0[1]})
        interrupt.check()  # a stop whose exception was swallowed (weakref callback) ends here
