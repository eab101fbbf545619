"""Seeded, class-stratified subsets, hold-out splits and k-fold assignments.

Every draw uses its own ``torch.Generator`` so the same seed gives the same indices on any
machine, and each class keeps its share (paper 003 trains on stratified 10 % and 1 % subsets
and reports mean ± std over 5 test splits).
"""

from __future__ import annotations

import torch


def _per_class(y: torch.Tensor, seed: int) -> list[torch.Tensor]:
    """Indices of each class, each shuffled by one generator seeded with ``seed``."""
    g = torch.Generator().manual_seed(seed)
    y = y.cpu()
    out = []
    for c in torch.unique(y):
        idx = torch.nonzero(y == c).flatten()
        out.append(idx[torch.randperm(len(idx), generator=g)])
    return out


def _quotas(sizes: list[int], fraction: float) -> list[int]:
    """Per-class counts summing to round(fraction * total) (largest remainder), at least 1 each."""
    exact = [fraction * n for n in sizes]
    counts = [int(e) for e in exact]
    short = round(fraction * sum(sizes)) - sum(counts)
    for i in sorted(range(len(sizes)), key=lambda i: counts[i] - exact[i])[:max(0, short)]:
        counts[i] += 1
    return [min(n, max(1, c)) for n, c in zip(sizes, counts)]


def stratified_subset(y: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """Sorted indices of ``fraction`` of the samples, each class keeping its share (>= 1 each)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    groups = _per_class(y, seed)
    counts = _quotas([len(g) for g in groups], fraction)
    parts = [g[:c] for g, c in zip(groups, counts)]
    return torch.cat(parts).sort().values if parts else torch.zeros(0, dtype=torch.long)


def stratified_split(y: torch.Tensor, fraction: float, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(rest, held): sorted disjoint indices, ``held`` about ``fraction`` of each class."""
    held = stratified_subset(y, fraction, seed)
    mask = torch.ones(len(y), dtype=torch.bool)
    mask[held] = False
    return torch.nonzero(mask).flatten(), held


def training_subset(y_train: torch.Tensor, train_index: torch.Tensor, fraction: float, seed: int) -> torch.Tensor:
    """The dataset indices a ``train_fraction`` variant trains on: a stratified ``fraction`` of the
    experiment's training split ``train_index``. Every component that wants "the same subset as
    the variants" (paper 003's 10 %, e.g. a defence fitted at wrap time) calls this."""
    if fraction >= 1:
        return train_index
    labels = y_train[train_index.to(y_train.device)].cpu()
    return train_index[stratified_subset(labels, fraction, seed + 4).to(train_index.device)]


def fold_ids(y: torch.Tensor, k: int, seed: int) -> torch.Tensor:
    """Fold number (0..k-1) of every sample; each class is dealt round-robin so folds balance."""
    if k < 1:
        raise ValueError(f"the number of folds must be >= 1, got {k}")
    folds = torch.zeros(len(y), dtype=torch.long)
    offset = 0
    for idx in _per_class(y, seed):
        folds[idx] = (torch.arange(len(idx)) + offset) % k
        offset += len(idx)  # the next class starts where this one stopped, so fold sizes even out
    return folds
