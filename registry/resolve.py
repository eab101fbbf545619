"""Turn names and parameter tables into validated component instances.

Everything a user can get wrong here raises an :class:`advx.errors.AdvxError` subclass whose
message names where the value was written, what was given and what would be valid.
"""

from __future__ import annotations

import difflib
import inspect
import re
from typing import Any

import attrs

from advx.errors import PluginError, UnknownComponentError
from advx.contract import CONTRACT
from advx.values import field_table, instantiate

from .hookspecs import KIND_HOOKS
from .manager import (FIRST_PARTY, AdvxPluginManager, make_plugin_manager, plugin_distribution, warn_once,
                      where_raised)

NAME_RE = re.compile(r"^[a-z][a-z0-9]*(?:[-_.][a-z0-9]+)*$")
KIND_ALIASES = {
    "models": "model", "datasets": "dataset", "data": "dataset", "attacks": "attack",
    "augmentation": "training_augmentation", "augmentations": "training_augmentation",
    "training_augmentations": "training_augmentation", "training-augmentation": "training_augmentation",
    "defense": "inference_defense", "defenses": "inference_defense", "defence": "inference_defense",
    "inference_defenses": "inference_defense", "inference-defense": "inference_defense",
    "evaluators": "evaluator", "metric": "evaluator", "metrics": "evaluator",
    "threat-model": "threat_model", "threat_models": "threat_model", "threat-models": "threat_model",
    "mode": "threat_model", "modes": "threat_model",
}
#: Class flags the core reads (advx.protocols); ``advx describe`` shows the ones a class declares.
FLAGS = ("gradient_free", "minimal", "supports_target", "per_sample_streams", "randomized", "differentiable",
         "optimizes_input")


def declared_flags(cls: Any) -> dict[str, bool]:
    return {f: bool(getattr(cls, f)) for f in FLAGS if isinstance(getattr(cls, f, None), bool)}


def declared_norm(cls: Any) -> str | None:
    """An attack's threat model as ``advx describe`` shows it: the class's ``norm``, or the
    default of its ``norm`` parameter."""
    field = attrs.fields_dict(cls).get("norm") if attrs.has(cls) else None
    if field is not None:
        return f"{field.default} (parameter norm)"
    value = getattr(cls, "norm", None)
    return value if isinstance(value, str) else None


def flags_line(flags: dict[str, bool]) -> list[str]:
    return [f"flags: {', '.join(f'{k}={str(v).lower()}' for k, v in flags.items())}"] if flags else []


def unknown_component(kind: str, name: str, installed: list[str], where: str | None = None,
                      sources: list[str] | tuple[str, ...] = (), skipped: list[str] = ()) -> UnknownComponentError:
    """The one unknown-name error (the registry's and the catalog's): a suggestion, what is
    installed, and the plugins that failed to load (the name may have been theirs)."""
    at = f" at {where}" if where else ""
    hint = difflib.get_close_matches(str(name), installed, n=1)
    did = f"; did you mean {hint[0]!r}?" if hint else ""
    also = f"; or from a source: {', '.join(f'{s}:...' for s in sources)}" if sources else ""
    failed = f"; plugins that did not load (it may be theirs): {'; '.join(skipped)} (advx plugins)" if skipped else ""
    return UnknownComponentError(f"unknown {normalize_kind(kind).replace('_', ' ')} {name!r}{at}{did} installed: "
                                 f"{', '.join(installed) or '(none)'}{also}{failed}")


def skipped_plugins(rows: list[dict[str, Any]]) -> list[str]:
    """``advx plugins``' rows of plugins that provide nothing because they failed, in short."""
    return [f"{r['distribution']} ({r['problem'][:160]})" for r in rows if r.get("problem") and not r["provides"]]


def hook_location(impl: Any) -> str:
    """``file:line`` of a hook implementation (where its author looks)."""
    code = getattr(impl.function, "__code__", None)
    return f"{code.co_filename}:{code.co_firstlineno}" if code else repr(impl.function)


def component_location(obj: Any) -> str:
    """``file:line`` of the class a plugin registered (or of the class of an instance it returned)."""
    cls = obj if isinstance(obj, type) else type(obj)
    try:
        return f"{inspect.getsourcefile(cls)}:{inspect.getsourcelines(cls)[1]}"
    except (OSError, TypeError):
        return getattr(cls, "__module__", "?")


def describe_entry(kind: str, name: str, e: dict[str, Any]) -> str:
    """``advx describe``'s text from a component's record (``Registry.entry`` or the catalog's copy)."""
    lines = [f"{normalize_kind(kind)} {name!r}  ({e['class']}, from {e['origin']})", ""]
    if e["doc"]:
        lines += [e["doc"], ""]
    lines += flags_line(e.get("flags", {}))
    if e.get("norm"):
        lines.append(f"norm: {e['norm']}  (the ball every output is checked in)")
    lines.append("parameters:" if e["fields"] else "parameters: none")
    lines += [f"  {n}: {t} = {d}" for n, t, d in e["fields"]]
    return "\n".join(lines)


def normalize_kind(kind: str) -> str:
    """Accept singular, plural and a few spelled-out aliases of a component kind."""
    k = KIND_ALIASES.get(kind, kind)
    if k not in KIND_HOOKS:
        raise UnknownComponentError(f"unknown component kind {kind!r}; kinds: {', '.join(KIND_HOOKS)}")
    return k


_DIGESTS: dict[str, str] = {}


def package_digest(package: str) -> str:
    """sha256 over the relative paths and bytes of every .py file of an imported package (once
    per process: a plugin's code does not change under a running experiment)."""
    if package not in _DIGESTS:
        import hashlib
        import sys
        from pathlib import Path

        module = sys.modules.get(package)
        files = getattr(module, "__file__", None)
        h = hashlib.sha256()
        if files:
            root = Path(files).parent
            for f in sorted(root.rglob("*.py")) if Path(files).name == "__init__.py" else [Path(files)]:
                h.update(str(f.relative_to(root)).encode())
                h.update(f.read_bytes())
        _DIGESTS[package] = h.hexdigest()[:16]
    return _DIGESTS[package]


class Registry:
    """Component classes by kind and name, collected from a plugin manager and validated.

    Built-ins register first, then the first-party distributions (``FIRST_PARTY``), then every
    other plugin. A name clash stays local: the later plugin's clashing component is dropped with
    one warning naming both distributions, and the rest of that plugin loads; a component that
    breaks the protocol is dropped the same way. A plugin that fails to import provides nothing.
    ``problems`` (and ``advx plugins``) list what was dropped; ``strict=True`` raises instead."""

    def __init__(self, pm: AdvxPluginManager | None = None, *, strict: bool = False) -> None:
        self.pm = pm if pm is not None else make_plugin_manager()
        self.strict = strict
        self._by_kind: dict[str, dict[str, type]] = {}
        self._origin: dict[tuple[str, str], str] = {}
        self._provided: dict[str, dict[str, list[str]]] = {}  # plugin -> kind -> names it registered
        self._qualified: dict[str, dict[str, type]] = {}  # kind -> "distribution:name" -> class
        # plugin name -> why it was dropped (failed imports first)
        self.problems: dict[str, str] = {name: f[0] for name, f in getattr(self.pm, "failures", {}).items()}
        self._collect()

    def _ordered_plugins(self) -> list[tuple[str, Any]]:
        def rank(item: tuple[str, Any]) -> int:
            dist = plugin_distribution(self.pm, item[1])[0]
            return 0 if item[0].startswith("advx.") else 1 if dist in FIRST_PARTY else 2
        return sorted(self.pm.list_name_plugin(), key=rank)  # stable: registration order within a rank

    def _collect(self) -> None:
        tables: dict[str, dict[str, type]] = {kind: {} for kind in KIND_HOOKS}
        impls: dict[str, dict[int, list]] = {kind: {} for kind in KIND_HOOKS}
        for kind, hook in KIND_HOOKS.items():
            for i in getattr(self.pm.hook, hook).get_hookimpls():
                impls[kind].setdefault(id(i.plugin), []).append(i)
        source_impls = {id(i.plugin): i for i in self.pm.hook.advx_register_sources.get_hookimpls()}
        self._sources: dict[str, dict[str, type]] = {}  # kind -> prefix -> class (``prefix:target`` names)
        for plugin_name, plugin in self._ordered_plugins():
            dist_name, version = plugin_distribution(self.pm, plugin)
            dist = f"{dist_name} {version}"
            qualifiers = {dist_name, dist_name.replace("-", "_"), plugin_name}
            for kind in KIND_HOOKS:
                found = impls[kind].get(id(plugin), [])
                for extra in found[1:]:  # pluggy's specname= lets one module implement a hook twice
                    self._drop(plugin_name, dist, f"a second {KIND_HOOKS[kind]} hook ({hook_location(extra)}) beside "
                                                  f"the one at {hook_location(found[0])} is ignored: return every "
                                                  f"{kind} from one hook")
                for cls in self._offered(plugin_name, dist, kind, found[0] if found else None):
                    try:
                        self._check(kind, cls, dist)
                    except PluginError as exc:
                        self._drop(plugin_name, dist, str(exc))
                        continue
                    for q in qualifiers:  # ``dist:name`` picks this one even where another owns ``name``
                        self._qualified.setdefault(kind, {})[f"{q}:{cls.name}"] = cls
                        self._origin[(kind, f"{q}:{cls.name}")] = dist
                    taken = tables[kind].get(cls.name)
                    if taken is not None:
                        origin = self._origin.get((kind, cls.name), dist)
                        self._drop(plugin_name, dist, f"duplicate {kind} name {cls.name!r}: {cls.__qualname__} from "
                                                      f"{dist} ({component_location(cls)}) is dropped; "
                                                      f"{taken.__qualname__} from "
                                                      f"{origin} keeps it; pick either by its distribution: "
                                                      f"'{origin.split()[0]}:{cls.name}' or '{dist_name}:{cls.name}'")
                        continue
                    tables[kind][cls.name] = cls
                    self._origin[(kind, cls.name)] = dist
                    self._provided.setdefault(plugin_name, {}).setdefault(kind, []).append(cls.name)
            self._collect_sources(plugin_name, dist, source_impls.get(id(plugin)))
        self._by_kind = {kind: dict(sorted(t.items())) for kind, t in tables.items()}

    def _offered(self, plugin_name: str, dist: str, kind: str, impl: Any) -> list[Any]:
        """What one kind's hook returned, or [] (with the fault dropped at the hook's own line)."""
        if impl is None:
            return []
        hook = KIND_HOOKS[kind]
        try:
            offered = impl.function()
        except Exception as exc:  # a broken hook must not take the others down
            self._drop(plugin_name, dist, f"its {hook} hook raised {type(exc).__name__}: {exc}{where_raised(exc)}",
                       exc)
            return []
        if offered is None:
            return []
        if not isinstance(offered, (list, tuple)):
            if isinstance(offered, type):
                shown, example = offered.__qualname__, f", e.g. [{offered.__qualname__}]"
            else:
                shown, example = f"a {type(offered).__name__}", ""
            self._drop(plugin_name, dist, f"its {hook} hook ({hook_location(impl)}) returned {shown}; "
                                          f"return a list of component classes{example}")
            return []
        return list(offered)

    def _collect_sources(self, plugin_name: str, dist: str, impl: Any) -> None:
        """A plugin's ``prefix:target`` sources; the first plugin to offer a prefix keeps it."""
        if impl is None:
            return
        try:
            offered = impl.function() or {}
        except Exception as exc:  # a broken hook must not take the others down
            self._drop(plugin_name, dist, f"its advx_register_sources hook raised {type(exc).__name__}: {exc}"
                                          f"{where_raised(exc)}", exc)
            return
        for kind, table in offered.items():
            for prefix, cls in table.items():
                self._sources.setdefault(normalize_kind(kind), {}).setdefault(prefix, cls)

    def _drop(self, plugin_name: str, dist: str, why: str, exc: BaseException | None = None) -> None:
        """One component of ``plugin_name`` is dropped: warn once, remember why, or raise (strict)."""
        if self.strict:
            raise PluginError(why) from exc
        earlier = self.problems.get(plugin_name)
        self.problems[plugin_name] = f"{earlier}; {why}" if earlier else why
        warn_once(f"plugin {plugin_name!r} ({dist}): {why}", exc)

    @staticmethod
    def _check(kind: str, cls: Any, dist: str) -> None:
        """Raise PluginError, naming the class's file:line, when ``cls`` breaks the contract (the
        location is read only then: reading every component's source slowed each registry build)."""
        if not (isinstance(cls, type) and attrs.has(cls)):
            where = component_location(cls)
            shown = f"an instance of {type(cls).__qualname__}" if not isinstance(cls, type) else cls.__qualname__
            raise PluginError(f"{dist} registered {shown} as a {kind} ({where}): components must be attrs classes "
                              "(decorate with @attrs.frozen; return the class, not an instance)")
        name = getattr(cls, "name", None)
        if not isinstance(name, str) or not NAME_RE.match(name):
            raise PluginError(
                f"{dist} registered {cls.__qualname__} as a {kind} with invalid name {name!r} "
                f"({component_location(cls)}): use lower-case letters, digits and single '-', '_' or '.' separators")
        # defined by the class or a base other than ``object`` (every class inherits a __call__ from type)
        own = lambda m: any(callable(vars(b).get(m)) for b in cls.__mro__[:-1])  # noqa: E731
        missing = [" or ".join(group) for group in CONTRACT[kind]["required"] if not any(own(m) for m in group)]
        if missing:
            raise PluginError(
                f"{dist} registered {cls.__qualname__} ({name!r}) as a {kind} but it lacks {', '.join(missing)} "
                f"({component_location(cls)}); see advx.protocols")

    def names(self, kind: str) -> list[str]:
        return list(self._by_kind[normalize_kind(kind)])

    def origin(self, kind: str, name: str) -> str:
        return self._origin[(normalize_kind(kind), name)]

    def qualified_names(self, kind: str) -> list[str]:
        """Every ``distribution:name`` (and ``entry-point:name``) that selects a component of ``kind``,
        including one whose plain name another distribution owns."""
        return sorted(self._qualified.get(normalize_kind(kind), {}))

    def get(self, kind: str, name: str, where: str | None = None) -> type:
        kind = normalize_kind(kind)
        table = self._by_kind[kind]
        if name in table:
            return table[name]
        qualified = self._qualified.get(kind, {})
        if name in qualified:
            return qualified[name]
        sources = self._sources.get(kind, {})
        source = str(name).partition(":")[0] if ":" in str(name) else None
        if source in sources:
            return sources[source]
        public = [s for s in sources if s != "memory"]  # memory: objects handed to advx.evaluate
        raise unknown_component(kind, name, list(table), where, public, skipped_plugins(self.plugins()))

    def create(self, kind: str, name: str, params: dict[str, Any] | None = None, where: str | None = None) -> Any:
        cls = self.get(kind, name, where)
        params = dict(params or {})
        kind = normalize_kind(kind)
        if name not in self._by_kind[kind] and name not in self._qualified.get(kind, {}):
            params["target"] = str(name).partition(":")[2]  # "source:target": the target is a parameter
        return instantiate(cls, params, where or f"{kind} {name!r}")

    def code_digest(self, kind: str, name: str) -> tuple[str, str]:
        """(package, sha256 of its .py files) for the plugin package defining component ``name``;
        for advx's own components, (module, sha256 of that one file), so a change to the core's
        adversarial training retrains its models while the rest of the core leaves them alone.
        Results made by other code must not be reused: the digest goes into model cache keys and
        the run's identity."""
        module = self.get(kind, name).__module__
        top = module.split(".")[0]
        if top == "advx":
            return module, package_digest(module)
        return top, package_digest(top)

    def entry(self, kind: str, name: str) -> dict[str, Any]:
        """One component's record (what ``advx describe`` prints; the catalog stores these)."""
        cls = self.get(kind, name)
        return {"class": f"{cls.__module__}.{cls.__qualname__}", "origin": self.origin(kind, name),
                "doc": inspect.cleandoc(cls.__doc__ or ""), "flags": declared_flags(cls),
                **({"norm": declared_norm(cls)} if normalize_kind(kind) == "attack" else {}),
                "fields": [[n, t, repr(d)] for n, t, d in field_table(cls)]}

    def describe(self, kind: str, name: str) -> str:
        return describe_entry(kind, name, self.entry(kind, name))

    def plugins(self) -> list[dict[str, Any]]:
        """One row per plugin: distribution, version and what it registers; a plugin that failed
        to import or was dropped has ``problem`` (why) and provides nothing."""
        rows = []
        for plugin_name, why in self.problems.items():
            if self.pm.get_plugin(plugin_name) is None:  # never imported
                _, dist, version = self.pm.failures[plugin_name]
                rows.append({"plugin": plugin_name, "distribution": dist, "version": version, "provides": {},
                             "problem": why})
        for plugin_name, plugin in self.pm.list_name_plugin():
            dist, version = plugin_distribution(self.pm, plugin)
            provides = {kind: sorted(names) for kind, names in self._provided.get(plugin_name, {}).items()}
            row = {"plugin": plugin_name, "distribution": dist, "version": version, "provides": provides}
            if plugin_name in self.problems:
                row["problem"] = self.problems[plugin_name]
            rows.append(row)
        return rows
