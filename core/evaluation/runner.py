"""The cell runner: evaluates one cell of the grid chunk by chunk into the run file.

A chunk's adversarials come from the oblivious cache (crafted once per trained model and attack,
reused by every defence), from the transfer source, or are crafted on the defended pipeline
(adaptive, with EOT and BPDA) or by querying it (black-box); each seed block's randomness is
seeded from (seed, cell, block start), so a resumed or sharded run gives the same numbers.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import torch
from torch import nn

from advx import interrupt
from advx.batching import auto_batch_size
from advx.data.bundle import DataBundle, as_float
from advx.defense import build_defended, reseed, set_attacking

from .cells import (CLEAN, NONE, Cell, chunk_seed, find_attack, find_defense, per_sample_arrays, pick_targets,
                    predict, run_attack)
from .counting import CountingModel
from .results import attack_budget
from .sanity import SanityLog
from .store import RunStore


class CellRunner:
    """Evaluates cells chunk by chunk, sharing the oblivious adversarial cache."""

    def __init__(self, exp: Any, store: RunStore, data: DataBundle, test_index: torch.Tensor,
                 models: dict[str, CountingModel], device: torch.device, lo: int, hi: int, block: int, *,
                 train_index: torch.Tensor, cache_dir: Any) -> None:
        self.exp, self.cfg, self.store, self.data, self.models, self.device = exp, exp.config, store, data, models, device
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
        self._defended: dict[tuple[str, str, str], nn.Module] = {}
        #: what every defence is given (protocols.py: InferenceDefense): clean training data for
        #: MI-OL's pool or a classifier fitted at wrap time, which caches under ``cache_dir``
        self.defense_context = {"train_x": data.x_train, "train_y": data.y_train, "num_classes": data.num_classes,
                                "train_index": train_index, "seed": self.cfg.experiment.seed, "cache_dir": cache_dir}

    def defended(self, train: str, defense: str, attacking: bool) -> nn.Module:
        key = (train, defense, "attack" if attacking else "eval")
        if key not in self._defended:
            d = find_defense(self.cfg, defense, train)
            chain = [] if d is None else self.exp.components["defenses"][(d.label, d.trains)]
            repeats = 1 if d is None else d.repeats
            eot = (d.eot if d and d.eot else self.cfg.evaluate.eot)
            self._defended[key] = build_defended(self.models[train], chain, repeats=repeats, eot=eot,
                                                 context=self.defense_context)
        return self._defended[key]

    def batch_for(self, train: str, defense: str) -> int:
        """``evaluate.batch_size``, or with "auto" the largest that fits the free device memory."""
        size = self.cfg.evaluate.batch_size
        if size != "auto":
            return size
        if (train, defense) not in self._batch:
            d = find_defense(self.cfg, defense, train)
            draws = 1 if d is None else d.repeats * (d.eot or self.cfg.evaluate.eot)
            self._batch[(train, defense)] = auto_batch_size(self.models[train].model, self.x[:1], draws)
        return self._batch[(train, defense)]

    def oblivious(self, train: str, attack_label: str, start: int, stop: int) -> tuple[torch.Tensor, dict[str, np.ndarray]]:
        """Rows [start, stop) of the cached adversarial examples of (model, attack) — crafted
        once on the undefended model ``train``, reused by every defence (and, for the transfer
        threat model, by every other trained model) — with the attack's per-sample records."""
        path = f"adversarials/{Cell(train, NONE, attack_label, 'oblivious').key()}"
        while self.lo + self.store.n_done(path) < stop:
            s = self.lo + self.store.n_done(path)
            e = min(s + self.rows, self.hi)
            x_adv, logs, seconds, fw, bw = self.craft(self.models[train], self.models[train], train, NONE,
                                                      attack_label, s, e)
            self.store.append(path, {"x_adv": x_adv.cpu().numpy().astype(np.float32), **logs}, chunk=self.chunk,
                              extra_attrs={"seconds": seconds, "forwards": fw, "backwards": bw, "crafted": e - s})
        rows = {name: self.store.read_rows(path, name, start - self.lo, stop - self.lo)
                for name in self.store.names(path)}
        return torch.from_numpy(rows.pop("x_adv")).to(self.device), rows

    def blocks(self, s: int, e: int) -> list[tuple[int, int]]:
        """The seed blocks of rows [s, e) (s is always a block start)."""
        return [(b, min(b + self.block, e)) for b in range(s, e, self.block)]

    def craft(self, target_model: nn.Module, counter: CountingModel, train: str, defense: str, attack_label: str,
              s: int, e: int, reseed_key: tuple[str, str] | None = None,
              ) -> tuple[torch.Tensor, dict[str, np.ndarray], float, int, int]:
        """Attack rows [s, e), each seed block with its own generator; ``reseed_key`` (cell key,
        purpose) also reseeds a randomized defence under attack per block."""
        spec = find_attack(self.cfg, attack_label)
        attack = self.exp.components["attacks"][attack_label]
        batch = self.batch_for(train, defense)  # probes the raw model: not counted
        seed = self.cfg.experiment.seed
        counter.take()
        t0 = time.perf_counter()
        parts, logs = [], []
        for b, be in self.blocks(s, e):
            g = torch.Generator().manual_seed(chunk_seed(seed, train, attack_label, b))
            x, y = self.x[b:be], self.y[b:be]
            target = pick_targets(spec.target, self.models[train], x, y, self.data.num_classes, g)
            if reseed_key is not None:
                reseed(target_model, chunk_seed(seed, reseed_key[0], b, reseed_key[1]))
            x_adv, log = run_attack(attack, target_model, x, y, target, batch, g, self.autocast)
            parts.append(x_adv)
            logs.append(log)
        if self.device.type == "cuda":
            torch.cuda.synchronize()
        fw, bw = counter.take()
        merged = {k: np.concatenate([log[k] for log in logs]) for k in logs[0]}  # s < e: one block at least
        return torch.cat(parts), merged, time.perf_counter() - t0, fw, bw

    def evaluate(self, model: nn.Module, key: str, x_adv: torch.Tensor, s: int, e: int, batch: int,
                 ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predictions and losses of the deployed pipeline on rows [s, e), reseeded per block."""
        preds, losses = [], []
        for b, be in self.blocks(s, e):
            reseed(model, chunk_seed(self.cfg.experiment.seed, key, b, "eval"))
            pred, loss = predict(model, x_adv[b - s:be - s], self.y[b:be], batch, self.autocast)
            preds.append(pred)
            losses.append(loss)
        return torch.cat(preds), torch.cat(losses)

    def run(self, cell: Cell, order: int) -> None:
        path = f"cells/{cell.key()}"
        if self.store.has(path) and self.store.attrs(path).get("status") == "done":
            return
        if not self.store.has(path):
            self.store.set_attrs(path, started=time.time())
        self.store.set_attrs(path, spec=cell.spec(), status="running", order=order)
        attack = self.exp.components["attacks"].get(cell.attack)
        if attack is not None:  # the threat model the headline worst case groups this cell under
            self.store.set_attrs(path, budget=attack_budget(attack))
        members = getattr(attack, "members", None)
        if members:  # what the codes of a per-sample ``broken_by`` record mean
            self.store.set_attrs(path, members=list(members))
        counter = self.models[cell.train]
        for s in range(self.lo + self.store.n_done(path), self.hi, self.rows):
            e = min(s + self.rows, self.hi)
            x, y = self.x[s:e], self.y[s:e]
            t0 = time.perf_counter()
            fw = bw = 0
            logs: dict[str, np.ndarray] = {}
            if cell.mode == CLEAN:
                x_adv = x
            elif cell.mode == "oblivious":
                x_adv, logs = self.oblivious(cell.train, cell.attack, s, e)
            elif cell.mode == "transfer":  # crafted on the source model, unknown defence and weights
                x_adv, logs = self.oblivious(self.cfg.evaluate.transfer_from, cell.attack, s, e)
            elif cell.mode == "black-box":  # gradient-free: queries the deployed pipeline as evaluated
                model = self.defended(cell.train, cell.defense, attacking=False)
                x_adv, logs, _, fw, bw = self.craft(model, counter, cell.train, cell.defense, cell.attack, s, e,
                                                    reseed_key=(cell.key(), "queries"))
            else:
                model = self.defended(cell.train, cell.defense, attacking=True)
                set_attacking(model, True)
                try:
                    x_adv, logs, _, fw, bw = self.craft(model, counter, cell.train, cell.defense, cell.attack, s, e,
                                                        reseed_key=(cell.key(), "eot"))
                finally:
                    set_attacking(model, False)
            model = self.defended(cell.train, cell.defense, attacking=False)
            if s == self.lo and cell.mode == CLEAN:  # before the reseed: the checks' draws never move the numbers
                d = find_defense(self.cfg, cell.defense, cell.train)
                eot = (d.eot if d and d.eot else self.cfg.evaluate.eot)
                attacked = self.defended(cell.train, cell.defense, attacking=True)
                # a wrapper that averages its own draws in every call (the distribution classifier) is EOT
                eot = max(eot, *(getattr(m, "averages_draws", 1) for m in attacked.modules()))
                self.sanity.check_cell(cell, model, attacked, x, y, self.autocast,
                                       attacked_with_eot="adaptive" in self.cfg.evaluate.modes and eot > 1,
                                       modes=self.cfg.evaluate.modes)
            batch = self.batch_for(cell.train, cell.defense)
            counter.take()
            pred, loss = self.evaluate(model, cell.key(), x_adv, s, e, batch)
            efw, ebw = counter.take()
            arrays = {**per_sample_arrays(self.test_index[s:e], x, x_adv, y, pred, loss), **logs}
            if self.cfg.evaluate.save_adversarials and cell.mode != CLEAN:
                arrays["x_adv"] = x_adv.cpu().numpy().astype(np.float32)
            self.store.append(path, arrays, chunk=self.chunk,
                              extra_attrs={"seconds": time.perf_counter() - t0, "forwards": fw + efw,
                                           "backwards": bw + ebw})
            interrupt.check()  # a stop whose exception was swallowed (weakref callback) ends here
        self.store.set_attrs(path, status="done")
