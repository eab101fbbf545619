"""SIGTERM and SIGINT as a clean stop: the handler raises at once, and also leaves a flag the
evaluator checks after every chunk it writes — an exception raised while Python runs a weakref
callback or a ``__del__`` is swallowed, and the stop must not be lost with it."""

from __future__ import annotations

import contextlib
import signal
import sys


class Terminated(KeyboardInterrupt):
    """SIGTERM (a scheduler's kill, `timeout`), handled like Ctrl-C so the run file closes cleanly."""


_requested: int | None = None


def _handler(signum, frame) -> None:
    global _requested
    _requested = signum
    check()


def check() -> None:
    """Raise the pending stop, if a signal arrived (called between chunks)."""
    if _requested is not None:
        raise Terminated() if _requested == signal.SIGTERM else KeyboardInterrupt()


@contextlib.contextmanager
def stop_cleanly():
    """Install the handlers for SIGTERM and SIGINT (main thread only) for the duration."""
    global _requested
    _requested = None
    try:
        previous = {s: signal.signal(s, _handler) for s in (signal.SIGTERM, signal.SIGINT)}
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    default_hook = sys.unraisablehook

    def quiet(unraisable) -> None:  # the swallowed stop is re-raised by check(); do not print it
        if not (unraisable.exc_type and issubclass(unraisable.exc_type, KeyboardInterrupt)):
            default_hook(unraisable)

    sys.unraisablehook = quiet
    try:
        yield
    finally:
        sys.unraisablehook = default_hook
        for s, h in previous.items():
            signal.signal(s, h)
