"""What the evaluator tells an attack about where its points will be scored.

An iterative attack run for evaluation may stop spending passes on a sample once it is fooled —
but only when the point that fooled is final: the evaluator scores it on the very model the attack
queried, and that model is deterministic. Then the robust set is the same and only work is saved
(issue #48: "exact savings"). Everywhere else the reference's semantics hold and every sample runs
every iteration, keeping its latest fooling point: an oblivious point reused by defences it never
saw, a transfer point scored on another model, and a randomized pipeline, where the latest point
lies deepest in the region that fooled a draw. Called directly (``advx.create(...)(model, x, y)``)
an attack never stops early.
"""

from __future__ import annotations

import contextlib
import contextvars
from typing import Iterator

_FINAL: contextvars.ContextVar[bool] = contextvars.ContextVar("advx_final_points", default=False)


def may_stop_when_fooled() -> bool:
    """True when a point that fools the attacked model is final (see the module docstring): an
    iterative attack may then drop a fooled sample from its batch and return its first fooling
    point. Read it once per attack call."""
    return _FINAL.get()


@contextlib.contextmanager
def final_points(final: bool) -> Iterator[None]:
    """Set by the evaluator around one attack call."""
    token = _FINAL.set(bool(final))
    try:
        yield
    finally:
        _FINAL.reset(token)
