"""Per-sample pass ledger: which sample each forward and backward pass through a model carried.

A batched call count (7,820 forwards for AutoAttack whether it attacks 10 images or 80) cannot
show that an attack stopped spending passes on the samples it broke (issue #48, item 3). The
ledger charges each row of each pass to the sample it belongs to, and stays exact through the
compaction an attack does as samples fall:

* ``tally(n)`` opens an account of ``n`` samples (the evaluator, per attack batch; AutoAttack,
  per member);
* ``sample_rows(rows)`` says that the batches sent to the model inside it carry the samples
  ``rows`` of the enclosing frame (an attack running on the still-robust subset ``todo``; FAB's
  ``repeat_interleave`` copies). ``.set(rows)`` moves it as the batch shrinks;
* :class:`~advx.evaluation.counting.CountingModel` calls ``charge`` for every pass.

A pass whose row count does not match the innermost frame (an attack that compacts without
saying so, a third-party attack) is kept as *unattributed* rows on every open tally, never
guessed: a tally's per-sample counts plus its unattributed rows are all the rows that went
through the model while it was open.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Callable, Iterator

import torch


class Tally:
    """Forward and backward rows charged to each of ``n`` samples, and those no sample owned."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.forward = torch.zeros(n, dtype=torch.int64)
        self.backward = torch.zeros(n, dtype=torch.int64)
        self.unattributed = {"forward": 0, "backward": 0}

    def add(self, kind: str, ids: torch.Tensor | None, rows: int) -> None:
        if ids is None:
            self.unattributed[kind] += rows
        else:
            getattr(self, kind).index_add_(0, ids, torch.ones(len(ids), dtype=torch.int64))


class Rows:
    """A frame mapping the rows of the batches sent inside it to samples of the enclosing frame.
    Kept on the host, copied there only when a tally is open and only when the rows change (at an
    attack's compaction, a point that already waits for the device), never on every pass."""

    def __init__(self, rows: torch.Tensor, active: bool) -> None:
        self.active = active
        self.rows = torch.empty(0, dtype=torch.long)
        self.set(rows)

    def set(self, rows: torch.Tensor) -> None:
        if self.active:
            self.rows = rows.detach().flatten().long().cpu()


_FRAMES: contextvars.ContextVar[tuple[Tally | Rows, ...]] = contextvars.ContextVar("advx_ledger", default=())


@contextlib.contextmanager
def tally(n: int) -> Iterator[Tally]:
    """Charge the passes made inside to ``n`` samples (the rows of the enclosing frame, if any)."""
    account = Tally(n)
    token = _FRAMES.set(_FRAMES.get() + (account,))
    try:
        yield account
    finally:
        _FRAMES.reset(token)


@contextlib.contextmanager
def sample_rows(rows: torch.Tensor) -> Iterator[Rows]:
    """The batches sent inside carry the samples ``rows`` (indices into the enclosing frame's
    samples, repeats allowed). A no-op, and nearly free, when no tally is open."""
    frame = Rows(rows, active=bool(_FRAMES.get()))
    if not frame.active:
        yield frame
        return
    token = _FRAMES.set(_FRAMES.get() + (frame,))
    try:
        yield frame
    finally:
        _FRAMES.reset(token)


def owners(batch_rows: int) -> list[tuple[Tally, torch.Tensor | None]]:
    """For a pass of ``batch_rows`` rows: each open tally with the sample ids it charges (None:
    the rows could not be attributed). Walks from the innermost frame out, composing the maps: a
    ``Rows`` frame maps its samples to the enclosing frame's, a tally passes them through (its
    samples are the enclosing frame's, in order)."""
    frames = _FRAMES.get()
    if not frames:
        return []
    ids: torch.Tensor | None = None  # indices into the current frame's samples; None: not yet known
    broken = False
    out = []
    for frame in reversed(frames):
        size = len(frame.rows) if isinstance(frame, Rows) else frame.n
        if not broken:
            if ids is None:
                broken = batch_rows != size  # a batch sent straight under a frame must be its size
                ids = None if broken else torch.arange(size)
            elif len(ids) and int(ids.max()) >= size:
                broken = True  # rows declared beyond the frame: a caller's mistake, never guessed
        if isinstance(frame, Rows):
            if not broken:
                ids = frame.rows[ids]
        else:
            out.append((frame, None if broken else ids))
    return out


def charge_forward(batch_rows: int) -> Callable[[], None] | None:
    """Charge a forward pass of ``batch_rows`` rows; returns the charge of its backward pass
    (called when the gradient flows back), or None when no tally is open."""
    accounts = owners(batch_rows)
    if not accounts:
        return None
    for account, ids in accounts:
        account.add("forward", ids, batch_rows)

    def backward() -> None:
        for account, ids in accounts:
            account.add("backward", ids, batch_rows)
    return backward
