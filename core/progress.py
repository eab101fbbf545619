"""Progress where people work: a bar that moves within a batch, names the ensemble member
running and gives an ETA, on a terminal and in a notebook.

Three ways out:

- a terminal (stderr is a TTY): tqdm's bars, nested (cells, then samples);
- a notebook: tqdm's widget when ipywidgets is installed, else plain text (no warning);
- plain text (``ADVX_PROGRESS=1`` into a file or pipe, a notebook without widgets): one bar at a
  time, ASCII, no cursor movement — no escape codes in a log.

``ADVX_PROGRESS=0`` silences every bar; without it, bars show on a TTY or in a notebook.
``ADVX_PROGRESS_INTERVAL`` (seconds) sets how often the bar moves within a batch.

Attacks report how far they are with :func:`report_progress` (done of total iterations) and an
ensemble names each member with :func:`progress_part`; the evaluator turns that into the bar's
position inside the batch being attacked. Both cost nothing when nobody listens.
"""

from __future__ import annotations

import contextlib
import contextvars
import importlib.util
import os
import sys
import time
from typing import Any, Callable, Iterator

from tqdm import tqdm as _terminal_tqdm


def in_notebook() -> bool:
    """True inside a Jupyter kernel (where stderr is not a TTY but a person is watching)."""
    shell = sys.modules.get("IPython")
    if shell is None:
        return False
    try:
        ip = shell.get_ipython()
    except Exception:
        return False
    return ip is not None and type(ip).__name__ == "ZMQInteractiveShell"


def mode() -> str:
    """"off", "terminal", "widget" or "plain"."""
    flag = os.environ.get("ADVX_PROGRESS")
    if flag == "0":
        return "off"
    if in_notebook():
        return "widget" if importlib.util.find_spec("ipywidgets") is not None else "plain"
    if sys.stderr.isatty():
        return "terminal"
    return "plain" if flag is not None else "off"


class _Silent:
    """The bar when progress is off, or an outer bar in plain mode: every call does nothing."""

    n = 0

    def __init__(self, iterable: Any = ()) -> None:
        self._iterable = iterable

    def __getattr__(self, name: str) -> Callable[..., None]:
        return lambda *a, **k: None

    def __enter__(self) -> "_Silent":
        return self

    def __exit__(self, *exc: object) -> None:
        return None

    def __iter__(self) -> Iterator[Any]:
        return iter(self._iterable)


def progress(*, outer: bool = False, **kwargs: Any) -> Any:
    """A tqdm bar (``total=``, ``desc=``, ``unit=``, or ``iterable=``) shown where progress goes.
    ``outer``: a bar others nest in (the cells); in plain text it is left out so that one bar line
    is written at a time, and the inner bar names what the outer one would have."""
    kind = mode()
    if kind == "off" or (outer and kind == "plain"):
        return _Silent(kwargs.get("iterable", ()))
    if kind == "widget":
        from tqdm.notebook import tqdm as widget_tqdm

        return widget_tqdm(leave=False, **kwargs)
    if kind == "plain":
        return _terminal_tqdm(file=sys.stderr, ascii=True, leave=True, mininterval=0.5, **kwargs)
    return _terminal_tqdm(file=sys.stderr, leave=False, dynamic_ncols=True, **kwargs)


# ---------------------------------------------------------------------- attack-side reports
class _Span:
    """The part [lo, hi) of one batch's progress that the running (sub-)attack owns."""

    def __init__(self, report: Callable[[float, str], None], lo: float, hi: float, label: str) -> None:
        self.report, self.lo, self.hi, self.label = report, lo, hi, label


_SPAN: contextvars.ContextVar[_Span | None] = contextvars.ContextVar("advx_progress_span", default=None)


def report_progress(done: int, total: int) -> None:
    """Say that ``done`` of ``total`` iterations of the running attack are finished (call it once
    per iteration of the main loop). Moves the evaluator's bar within the batch; free when no bar
    listens."""
    span = _SPAN.get()
    if span is not None and total > 0:
        span.report(span.lo + (span.hi - span.lo) * min(max(done / total, 0.0), 1.0), span.label)


@contextlib.contextmanager
def progress_part(label: str, index: int, count: int) -> Iterator[None]:
    """Run part ``index`` of ``count`` equal parts of the current attack (an ensemble member, a
    restart, a target class): its :func:`report_progress` calls fill that part, and ``label``
    (when not empty) is shown beside the bar, e.g. ``apgd-t > target 3``."""
    parent = _SPAN.get()
    if parent is None:
        yield
        return
    width = parent.hi - parent.lo
    name = " > ".join(p for p in (parent.label, label) if p)
    token = _SPAN.set(_Span(parent.report, parent.lo + width * index / count,
                            parent.lo + width * (index + 1) / count, name))
    try:
        report_progress(0, 1)  # the member's name shows as soon as it starts
        yield
    finally:
        _SPAN.reset(token)


@contextlib.contextmanager
def tracking(report: Callable[[float, str], None]) -> Iterator[None]:
    """Listen to the attack run inside: ``report(fraction of the batch done, label)``."""
    token = _SPAN.set(_Span(report, 0.0, 1.0, ""))
    try:
        yield
    finally:
        _SPAN.reset(token)


def refresh_interval() -> float:
    """Seconds between the bar's moves within a batch: 0.2 on a screen, 1 in plain text (a log
    should not grow by five lines a second); ``ADVX_PROGRESS_INTERVAL`` sets it."""
    value = os.environ.get("ADVX_PROGRESS_INTERVAL")
    if value is not None:
        try:
            return max(float(value), 0.0)
        except ValueError:
            pass
    return 1.0 if mode() == "plain" else 0.2


class BatchProgress:
    """Moves a samples bar inside one batch of ``size`` samples that starts at ``start``: the
    position is start + size × fraction, refreshed at most every ``interval`` seconds and at once
    when the running member changes."""

    def __init__(self, bar: Any, start: int, size: int) -> None:
        self.bar, self.start, self.size = bar, start, size
        self.interval = refresh_interval()
        self.label, self.last = None, 0.0

    def __call__(self, fraction: float, label: str) -> None:
        now = time.monotonic()
        if label == self.label and now - self.last < self.interval:
            return
        self.last = now
        if label != self.label:
            self.label = label
            self.bar.set_postfix_str(label, refresh=False)
        self.bar.n = self.start + int(self.size * fraction)
        self.bar.refresh()
