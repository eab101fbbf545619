"""Build a pluggy manager on demand: built-ins, then entry points, then check."""

from __future__ import annotations

import importlib.metadata as md
import os
import sys
import warnings

import pluggy

from advx.contract import API_VERSION, api_supported
from advx.errors import AdvxWarning

from . import hookspecs

ENTRY_POINT_GROUP = "advx"
BUILTIN_MODULES = ("advx.builtins",)


_WARNED: set[str] = set()


def warn_once(message: str, exc: BaseException | None = None) -> None:
    """A plugin problem is said once per process, however many registries are built; with
    ``advx --debug`` (``ADVX_DEBUG=1``) the traceback of ``exc`` follows it."""
    if message not in _WARNED:
        _WARNED.add(message)
        warnings.warn(message, AdvxWarning, stacklevel=3)
        if exc is not None and os.environ.get("ADVX_DEBUG"):
            import traceback

            sys.stderr.write("".join(traceback.format_exception(exc)))


class AdvxPluginManager(pluggy.PluginManager):
    """A pluggy manager that remembers which distribution each entry point came from."""

    def __init__(self) -> None:
        super().__init__("advx")
        self.distributions: dict[str, md.Distribution] = {}
        #: entry point name -> (why it could not be imported, distribution, version)
        self.failures: dict[str, tuple[str, str, str]] = {}


#: The distributions this repository ships. They register right after the built-ins, so a name
#: they take is theirs: a later plugin offering the same name loses that one component. First
#: party is this list, never a name prefix (anyone may call a package ``advx-…``).
FIRST_PARTY = frozenset({"advx", "advx-zoo", "advx-attacks", "advx-mixup", "advx-counteract", "advx-batchout",
                         "advx-fixer", "advx-intelligent-mixup"})


def make_plugin_manager(*, autoload: bool | None = None, only: list[str] | None = None) -> AdvxPluginManager:
    """Return a fresh manager with built-ins and (unless disabled) installed plugins.

    ``ADVX_DISABLE_PLUGIN_AUTOLOAD`` (any non-empty value) skips entry points;
    ``ADVX_PLUGINS=a,b`` loads the first-party plugins and the entry points named ``a`` and ``b``
    (no other third-party plugin); ``ADVX_PLUGINS=only:a,b`` loads ``a`` and ``b`` alone.
    """
    pm = AdvxPluginManager()
    pm.add_hookspecs(hookspecs)
    for modname in BUILTIN_MODULES:
        pm.register(__import__(modname, fromlist=["_"]), name=modname)
    if autoload is None:
        autoload = not os.environ.get("ADVX_DISABLE_PLUGIN_AUTOLOAD")
    keep_first_party = False
    if only is None and os.environ.get("ADVX_PLUGINS"):
        text = os.environ["ADVX_PLUGINS"].strip()
        keep_first_party = not text.startswith("only:")
        only = [n.strip() for n in text.removeprefix("only:").split(",") if n.strip()]
    if autoload:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            first_party = ep.dist is not None and ep.dist.metadata["Name"] in FIRST_PARTY
            if only is not None and ep.name not in only and not (keep_first_party and first_party):
                continue
            if pm.get_plugin(ep.name) is not None:
                continue
            try:
                module = ep.load()
            except Exception as exc:  # one broken plugin must not stop every command
                _skip(pm, ep, f"failed to import {ep.value}: {type(exc).__name__}: {exc}{where_raised(exc)}", exc)
                continue
            refused = api_refusal(module)
            if refused:
                _skip(pm, ep, refused)
                continue
            pm.register(module, name=ep.name)
            pm.distributions[ep.name] = ep.dist
    pm.check_pending()
    return pm


def _skip(pm: AdvxPluginManager, ep: md.EntryPoint, why: str, exc: BaseException | None = None) -> None:
    """Record why entry point ``ep`` provides nothing, and warn once."""
    dist = ep.dist
    pm.failures[ep.name] = (why, *((dist.metadata["Name"], dist.version) if dist else ("?", "?")))
    warn_once(f"plugin {ep.name!r} is skipped: {why}", exc)


def api_refusal(module) -> str | None:
    """Why a plugin module cannot load under this advx's plugin API (``ADVX_API``, its declared
    range, excludes ``advx.contract.API_VERSION`` or is malformed), else None."""
    spec = getattr(module, "ADVX_API", None)
    if spec is None:
        return None
    where = f" ({getattr(module, '__file__', module.__name__)})"
    try:
        if api_supported(spec):
            return None
    except ValueError as exc:
        return f"ADVX_API = {spec!r}: {exc}{where}"
    return f"it supports advx plugin API {spec}; this advx offers {API_VERSION}: install a release of the plugin " \
           f"made for it{where}"


def plugin_distribution(pm: AdvxPluginManager, plugin) -> tuple[str, str]:
    """Name and version of the distribution that registered ``plugin``."""
    dist = pm.distributions.get(pm.get_name(plugin))
    if dist is not None:
        return dist.metadata["Name"], dist.version
    try:
        return "advx", md.version("advx")
    except md.PackageNotFoundError:
        return "advx", "0+unknown"


def where_raised(exc: BaseException) -> str:
    """`` (file.py:LINE)`` of the innermost frame of real code that raised ``exc`` (not the import
    machinery's ``<frozen …>`` frames), so a plugin author finds the line."""
    tb, found = exc.__traceback__, None
    while tb is not None:
        if not tb.tb_frame.f_code.co_filename.startswith("<"):
            found = tb
        tb = tb.tb_next
    return "" if found is None else f" ({found.tb_frame.f_code.co_filename}:{found.tb_lineno})"
