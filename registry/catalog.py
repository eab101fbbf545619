"""What ``advx list``, ``describe`` and ``plugins`` show, without importing a single plugin.

Importing the plugins imports torch (~2 s of a CLI that should answer at once), so the first
command after an install writes a catalog — every component's kind, name, origin, docstring and
parameters, and every plugin's row — to ``$XDG_CACHE_HOME/advx`` (or ``ADVX_CACHE_DIR``), keyed by
the installed ``advx`` entry points, their versions and the size and mtime of every ``.py`` file
of their packages (found without importing them). Any change to those builds the catalog again.
"""

from __future__ import annotations

import hashlib
import importlib.metadata as md
import importlib.util
import json
import os
from pathlib import Path
from typing import Any


from .hookspecs import KIND_HOOKS

ENTRY_POINT_GROUP = "advx"


def _package_files(package: str) -> list[tuple[str, int, int]]:
    """(path, size, mtime_ns) of the package's .py files, located without importing it."""
    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return [(package, -1, -1)]
    if spec is None:
        return [(package, -1, -1)]
    roots = list(spec.submodule_search_locations or []) or ([str(Path(spec.origin).parent)] if spec.origin else [])
    out = []
    for root in roots:
        for f in sorted(Path(root).rglob("*.py")):
            st = f.stat()
            out.append((str(f), st.st_size, st.st_mtime_ns))
    return out


def catalog_key() -> str:
    """A digest of everything a catalog depends on: entry points, versions, source files, env."""
    parts: list[Any] = [os.environ.get("ADVX_PLUGINS", ""), os.environ.get("ADVX_DISABLE_PLUGIN_AUTOLOAD", "")]
    parts.append(_package_files("advx"))
    for ep in sorted(md.entry_points(group=ENTRY_POINT_GROUP), key=lambda e: e.name):
        dist = ep.dist
        parts.append((ep.name, ep.value, dist.metadata["Name"] if dist else "?", dist.version if dist else "?",
                      _package_files(ep.value.split(":")[0].split(".")[0])))
    return hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:20]


def cache_dir() -> Path:
    base = os.environ.get("ADVX_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "advx")
    return Path(base)


def build(registry: Any) -> dict[str, Any]:
    """The catalog of a loaded registry (JSON-ready)."""
    kinds = {kind: {name: registry.entry(kind, name) for name in registry.names(kind)} for kind in KIND_HOOKS}
    def qualified(kind: str, q: str) -> str | dict[str, Any]:
        """``distribution:name``: the plain name where it is the same class, else its own record."""
        name = q.partition(":")[2]
        return name if registry.get(kind, q) is registry.get(kind, name) else registry.entry(kind, q)

    qualified_names = {kind: {q: qualified(kind, q) for q in registry.qualified_names(kind)} for kind in KIND_HOOKS}
    plugin_commands = [n for n, _ in registry.pm.list_name_plugin()
                       if not n.startswith("advx.") and hasattr(registry.pm.get_plugin(n), "advx_register_commands")]
    return {"kinds": kinds, "qualified": qualified_names, "plugins": registry.plugins(), "plugin_commands": plugin_commands}


def load(fresh: bool = False) -> dict[str, Any]:
    """The catalog for what is installed now: read from the cache, or built and written."""
    path = cache_dir() / f"catalog-{catalog_key()}.json"
    if not fresh and path.is_file():
        try:
            return json.loads(path.read_text())
        except (OSError, ValueError):
            pass  # a torn write: build it again
    from .resolve import Registry

    data = build(Registry())
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        for old in path.parent.glob("catalog-*.json"):
            old.unlink(missing_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_text(json.dumps(data))
        tmp.replace(path)
    except OSError:
        pass  # a read-only home: answer without caching
    return {**data, "built_now": True}  # its plugin problems were warned while it was built


def entry(catalog: dict[str, Any], kind: str, name: str) -> dict[str, Any]:
    """One component's record, or the registry's own unknown-component error."""
    from .resolve import normalize_kind, skipped_plugins, unknown_component

    table = catalog["kinds"][normalize_kind(kind)]
    if name in table:
        return table[name]
    q = catalog.get("qualified", {}).get(normalize_kind(kind), {}).get(name)
    if q is not None:
        return table[q] if isinstance(q, str) else q
    raise unknown_component(kind, name, list(table), skipped=skipped_plugins(catalog["plugins"]))


def describe(catalog: dict[str, Any], kind: str, name: str) -> str:
    """The text of ``Registry.describe``, from the catalog."""
    from .resolve import describe_entry

    return describe_entry(kind, name, entry(catalog, kind, name))


def known_plugins(path: Path | None = None) -> list[dict[str, str]]:
    """The known plugins (``advx/known_plugins.toml``: distribution, summary, source, install), for
    ``advx plugins --all``; a plugin author lists one by adding an entry."""
    import importlib.resources
    import tomllib

    from advx.errors import ConfigError

    text = path.read_text() if path else (importlib.resources.files("advx") / "known_plugins.toml").read_text()
    path = path or "advx/known_plugins.toml"
    rows = tomllib.loads(text).get("plugin", [])
    keys = ("distribution", "summary", "source", "install")
    for i, row in enumerate(rows):
        if set(row) != set(keys) or not all(isinstance(row[k], str) and row[k] for k in keys):
            raise ConfigError(f"{path}: plugin[{i}] needs exactly {', '.join(keys)}, each a non-empty string; "
                              f"got {sorted(row)}")
    return rows
