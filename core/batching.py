"""Batch sizes from free accelerator memory (``evaluate.batch_size = "auto"``).

An attack step holds a forward pass's activations plus their gradients; the probe measures that
peak for a small batch of the real model, and the batch is the largest power of two that fits
in a fraction of the free memory. On the CPU, memory is rarely the limit and large batches do
not speed up the BLAS kernels, so "auto" is a fixed 256 there.
"""

from __future__ import annotations

import torch
from torch import nn

CPU_BATCH = 256
SEED_BLOCKS = 16  # a test set is cut into about this many seed blocks: the unit of sharding
MIN_SEED_BLOCK = 32  # ...but no block smaller than this (unless the batch is): tiny blocks waste batching


def seed_block(n: int, batch_size: int | str, device_type: str) -> int:
    """Samples that share one random stream in the evaluator, and the unit ranks are dealt.

    Attacks, targets and randomized defences draw from a generator seeded by the block's global
    start, so a sample's numbers depend on neither the world size, the chunk size nor (with an
    explicit batch size) the memory. About ``SEED_BLOCKS`` blocks per test set lets up to 16
    ranks share the work evenly (a test set under 512 samples has fewer, of ``MIN_SEED_BLOCK``);
    a block is never larger than one attack batch, so a single process loses no batching. With
    "auto" on CUDA the block is not capped: the memory-fitted batches split it, and only a block
    larger than what fits depends on the free memory.
    """
    block = max(MIN_SEED_BLOCK, -(-n // SEED_BLOCKS))
    if batch_size == "auto":
        return block if device_type == "cuda" else min(block, CPU_BATCH)
    return min(block, int(batch_size))


def batch_from_memory(free_bytes: int, bytes_per_sample: float, *, fraction: float = 0.5, floor: int = 16,
                      cap: int = 4096) -> int:
    """Largest power of two with ``batch * bytes_per_sample <= fraction * free_bytes``, in [floor, cap]."""
    fits = int(fraction * free_bytes / max(bytes_per_sample, 1.0))
    if fits < floor:
        return floor
    return min(cap, 1 << (fits.bit_length() - 1))


def probe_bytes_per_sample(model: nn.Module, example: torch.Tensor, probe: int = 32) -> float:
    """Peak CUDA memory of one forward + input-gradient backward, per sample of a ``probe`` batch."""
    device = example.device
    x = example[:1].expand(probe, *example.shape[1:]).clone().requires_grad_(True)
    torch.cuda.synchronize(device)
    torch.cuda.reset_peak_memory_stats(device)
    base = torch.cuda.memory_allocated(device)
    with torch.enable_grad():
        (grad,) = torch.autograd.grad(model(x).float().sum(), x)
    del grad
    torch.cuda.synchronize(device)
    return (torch.cuda.max_memory_allocated(device) - base) / probe


def auto_batch_size(model: nn.Module, example: torch.Tensor, draws: int = 1) -> int:
    """The batch for attacking ``model`` on inputs like ``example``; ``draws`` is how many copies a
    randomized defence runs per input (repeats x EOT), which multiplies the memory."""
    if example.device.type != "cuda":
        return CPU_BATCH
    free, _ = torch.cuda.mem_get_info(example.device)
    return batch_from_memory(free, probe_bytes_per_sample(model, example) * max(1, draws))
