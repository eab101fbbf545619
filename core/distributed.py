"""Data parallelism with torch.distributed, for ``advx run`` launched by ``torchrun``.

torchrun sets ``RANK``, ``WORLD_SIZE`` and ``LOCAL_RANK``; ``Dist.from_env()`` joins the process
group (NCCL on CUDA, gloo on CPU) and every rank then runs the same experiment:

- training wraps the model in DistributedDataParallel; each global batch (the same one a single
  process would draw) is split across ranks and the loss re-weighted so the averaged gradient is
  the single-process gradient;
- evaluation is sharded by sample index: rank r takes a contiguous range of whole seed blocks
  (``advx.batching.seed_block``: about a sixteenth of the test set, at least 32 samples, at most
  one attack batch) and writes its own HDF5 shard, which rank 0 merges into the run file at the
  end. Every random draw is seeded by its block's global start, so the numbers match a
  single-process run whatever the world size, chunk size or memory.

``Dist(rank, world)`` without a process group describes one shard of a job run as separate
processes (``advx run --shard R/W``, e.g. a cluster array job); ``advx merge`` joins the shards.
"""

from __future__ import annotations

import gc
import os
from pathlib import Path
from typing import Any

import attrs
import torch
import torch.distributed as tdist


@attrs.frozen
class Dist:
    """This process's place in a data-parallel job (rank 0 of 1 when not distributed)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    group: bool = False  # True when a torch.distributed process group is live

    @classmethod
    def from_env(cls, device_type: str) -> "Dist":
        """Join torchrun's process group when ``WORLD_SIZE`` > 1; else the single-process Dist."""
        world = int(os.environ.get("WORLD_SIZE", "1"))
        if world <= 1:
            return cls()
        if not tdist.is_initialized():
            tdist.init_process_group("nccl" if device_type == "cuda" else "gloo")
        return cls(tdist.get_rank(), tdist.get_world_size(), int(os.environ.get("LOCAL_RANK", "0")), True)

    @property
    def sharded(self) -> bool:
        return self.world > 1

    def barrier(self) -> None:
        if self.group:
            tdist.barrier()

    def broadcast(self, obj: Any) -> Any:
        """Rank 0's ``obj`` on every rank."""
        if not self.group:
            return obj
        box = [obj]
        tdist.broadcast_object_list(box, src=0)
        return box[0]

    def all_true(self, flag: bool) -> bool:
        """True only if ``flag`` is true on every rank (e.g. "the checkpoint is cached here")."""
        if not self.group:
            return flag
        t = torch.tensor([int(flag)])
        tdist.all_reduce(t, op=tdist.ReduceOp.MIN)
        return bool(t.item())

    def close(self) -> None:
        """Leave the process group once every rank got here: a rank tearing gloo down while a
        peer is still working (rank 0 saving, merging) aborted now and then ("terminate called
        without an active exception"). DDP wrappers sit in reference cycles; collecting them here,
        while the group is alive, keeps their reducers from being torn down at interpreter exit."""
        if self.group and tdist.is_initialized():
            gc.collect()
            tdist.barrier()
            tdist.destroy_process_group()


def shard_bounds(n: int, block: int, rank: int, world: int) -> tuple[int, int]:
    """Rank ``rank``'s contiguous sample range [lo, hi): whole seed blocks (``seed_block``), dealt
    so that no two ranks differ by more than one block and the lowest ranks get the extra ones
    (rank 0, which runs the sanity checks, is empty only when the test set is)."""
    blocks = -(-n // block)
    base, extra = divmod(blocks, world)
    first = rank * base + min(rank, extra)
    last = first + base + (rank < extra)
    return min(first * block, n), min(last * block, n)


def shard_paths(run_file: Path, world: int) -> list[Path]:
    """Where the shards of ``run_file`` live: ``<run>.shards/rank-<r>-of-<world>.h5``."""
    folder = Path(str(run_file) + ".shards")
    return [folder / f"rank-{r}-of-{world}.h5" for r in range(world)]


def existing_shards(run_file: Path) -> list[Path]:
    folder = Path(str(run_file) + ".shards")
    return sorted(folder.glob("rank-*-of-*.h5")) if folder.is_dir() else []


def split_batch(idx: torch.Tensor, dist: Dist) -> tuple[torch.Tensor, float]:
    """This rank's part of a global batch and the loss weight that makes DDP's gradient average
    equal the full batch's mean gradient (every rank takes the whole batch if it is tiny)."""
    if not dist.sharded or len(idx) < dist.world:
        return idx, 1.0
    part = idx.tensor_split(dist.world)[dist.rank]
    return part, len(part) * dist.world / len(idx)
