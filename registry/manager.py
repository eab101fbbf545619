"""Build a pluggy manager on demand: built-ins, then entry points, then check."""

from __future__ import annotations

import importlib.metadata as md
import os
import warnings

import pluggy

from advx.errors import AdvxWarning

from . import hookspecs

ENTRY_POINT_GROUP = "advx"
BUILTIN_MODULES = ("advx.builtins",)


_WARNED: set[str] = set()


def warn_once(message: str) -> None:
    """A plugin problem is said once per process, however many registries are built."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, AdvxWarning, stacklevel=3)


class AdvxPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which distribution each entry point came from."""

    def __init__(self) -> None:
        super().__init__("advx")
        self.distributions: dict[str, md.Distribution] = {}
        #: entry point name -> (why it could not be imported, distribution, version)
        self.failures: dict[str, tuple[str, str, str]] = {}


def make_plugin_manager(*, autoload: bool | None = None, only: list[str] | None = None) -> AdvxPluginManager:
    """Return a fresh manager with built-ins and (unless disabled) installed plugins.

    ``ADVX_DISABLE_PLUGIN_AUTOLOAD`` (any non-empty value) skips entry points;
    ``ADVX_PLUGINS=a,b`` loads only the entry points named ``a`` and ``b``.
    """
    pm = AdvxPluginManager()
    pm.add_hookspecs(hookspecs)
    for modname in BUILTIN_MODULES:
        pm.register(__import__(modname, fromlist=["_"]), name=modname)
    if autoload is None:
        autoload = not os.environ.get("ADVX_DISABLE_PLUGIN_AUTOLOAD")
    if only is None and os.environ.get("ADVX_PLUGINS"):
        only = [n.strip() for n in os.environ["ADVX_PLUGINS"].split(",") if n.strip()]
    if autoload:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            if only is not None and ep.name not in only:
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # one broken plugin must not stop every command
                why = f"failed to import {ep.value}: {type(exc).__name__}: {exc}"
                dist = ep.dist
                pm.failures[ep.name] = (why, *((dist.metadata["Name"], dist.version) if dist else ("?", "?")))
                warn_once(f"plugin {ep.name!r} is skipped: {why}")
                continue
            pm.register(module, name=ep.name)
            pm.distributions[ep.name] = ep.dist
    pm.check_pending()
    return pm


def plugin_distribution(pm: AdvxPluginManager, plugin) -> tuple[str, str]:
    """Name and version of the distribution that registered ``plugin``."""
    dist = pm.distributions.get(pm.get_name(plugin))
    if dist is not None:
        return dist.metadata["Name"], dist.version
    try:
        return "advx", md.version("advx")
    except md.PackageNotFoundError:
        return "advx", "0+unknown"
