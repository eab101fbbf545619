"""Per-rank shard files of a sharded run (torchrun or ``--shard R/W``) merged into the run file:
finished groups appended in rank order, a shard's header adopted when the main file has none."""

from __future__ import annotations

import contextlib
from pathlib import Path

import h5py

from advx.errors import StoreError

from .runstore import RunStore


#: per-cell counters a merge adds up over the ranks (the others are the same on every rank)
_SUMMED = ("seconds", "forwards", "backwards", "crafted", "forward_rows", "backward_rows", "craft_forward_rows",
           "craft_backward_rows", "unattributed_forward_rows", "unattributed_backward_rows")


def _shard_empty(shard: RunStore) -> bool:
    """A rank dealt no samples (more ranks than seed blocks) has nothing to finish."""
    return int(shard.f.attrs["shard_hi"]) == int(shard.f.attrs["shard_lo"])


def _shard_done(shard: RunStore, path: str) -> bool:
    if not shard.has(path):
        return _shard_empty(shard)
    a = shard.attrs(path)
    if path.startswith("cells/"):
        return a.get("status") == "done"
    return int(a.get("n_done", 0)) == int(shard.f.attrs["shard_hi"]) - int(shard.f.attrs["shard_lo"])


def merge_shards(main: RunStore, shard_files: list[Path]) -> tuple[list[str], list[str]]:
    """Append every group finished in all shards (rank order) to ``main``; return (merged, unfinished).

    Groups already finished in ``main`` are left alone, so merging twice changes nothing.
    """
    merged: list[str] = []
    unfinished: list[str] = []
    with contextlib.ExitStack() as stack:  # every opened shard is closed, even if a later one fails
        shards = [stack.enter_context(RunStore(p, mode="r")) for p in shard_files]
        worlds = {int(s.f.attrs.get("shard_world", -1)) for s in shards}
        if worlds != {len(shards)} or sorted(int(s.f.attrs["shard_rank"]) for s in shards) != list(range(len(shards))):
            raise StoreError(f"{main.path}: shards {[str(p) for p in shard_files]} are not ranks 0..{len(shards) - 1} "
                             "of one job")
        shards.sort(key=lambda s: int(s.f.attrs["shard_rank"]))
        for s in shards:
            if s.f.attrs["config_hash"] != main.f.attrs["config_hash"]:
                raise StoreError(f"{s.path} was written by a different config than {main.path}")
        for top in ("adversarials", "cells"):
            for name in sorted({n for s in shards for n in s.names(top)}):
                path = f"{top}/{name}"
                if main.has(path) and (main.attrs(path).get("status") == "done" or
                                       (top == "adversarials" and main.n_done(path) == len(main.read("test/index")))):
                    continue
                if not all(_shard_done(s, path) for s in shards):
                    unfinished.append(path)
                    continue
                if main.has(path):
                    del main.f[path]
                for s in shards:
                    n = s.n_done(path)
                    if n == 0:
                        continue
                    g = s.f[path]
                    arrays = {k: g[k][:n] for k in g if isinstance(g[k], h5py.Dataset)}
                    main.append(path, arrays, chunk=g[next(iter(arrays))].chunks[0],
                                extra_attrs={k: v for k, v in s.attrs(path).items() if k in _SUMMED})
                first = next(s for s in shards if s.has(path))
                keep = {k: v for k, v in first.attrs(path).items() if k not in _SUMMED and k != "n_done"}
                main.set_attrs(path, **keep)
                merged.append(path)
    return merged, unfinished


def adopt_header(main: RunStore, shard_file: Path) -> None:
    """Give an empty run file the header, test split and model records of one of its shards."""
    with RunStore(shard_file, mode="r") as shard:
        assert main.f is not None and shard.f is not None
        if "advx_schema" not in main.f.attrs:
            main.f.attrs.update({k: shard.f.attrs[k] for k in ("advx_schema", "config", "config_hash", "versions",
                                                              "device", "created")})
            main.f.attrs.update({k: shard.f.attrs[k] for k in ("machine", "train_size", "command") if k in shard.f.attrs})
        for name in shard.names("test"):
            if not main.has(f"test/{name}"):
                main.write_array(f"test/{name}", shard.read(f"test/{name}"))
        for name in shard.names("models"):
            if not main.has(f"models/{name}"):
                main.set_attrs(f"models/{name}", **shard.attrs(f"models/{name}"))
        main.flush()
