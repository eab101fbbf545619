"""The command that made a run, as a person would type it again: recorded in the run file when
the run starts, so ``summary.json`` names it (and not the ``advx report`` that read it back)."""

from __future__ import annotations

import shlex
import sys

_command: str | None = None


def set_command(args: list[str] | None) -> None:
    """Called by the ``advx`` command line with its arguments (also under click's test runner), and
    with None when it returns."""
    global _command
    _command = None if args is None else shlex.join(["advx", *args])


def invocation() -> str:
    """``advx …`` when the command line runs, else the Python process's own command line."""
    return _command or shlex.join(["python", *sys.argv])
