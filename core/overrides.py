"""Reading a TOML file and ``--set a.b=v`` overrides on its raw table.

Override values are TOML-typed (``--set attack.0.eps=8/255`` is the string "8/255", which the
config reads as a number; ``--set model.train.milestones=[12,16]`` a list); integers in the path
index arrays. A label written for the file's parameters gets the overridden ones appended, so a
table never calls a 20-step PGD "PGD-10".
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: the same parser, from PyPI
    import tomli as tomllib  # type: ignore[no-redef]

from .errors import ConfigError


def parse_value(text: str) -> Any:
    try:
        return tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        return text


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``a.b.c=value`` overrides applied (TOML-typed values;
    integers in the path index arrays: ``attack.0.steps=5``; the index one past the end of an
    array of tables adds a table: ``attack.4.name=square`` on four attacks)."""
    raw = copy.deepcopy(raw)
    for item in overrides:
        if "=" not in item:
            raise ConfigError(f"--set {item!r}: expected KEY=VALUE, e.g. --set model.train.epochs=2")
        key, value = item.split("=", 1)
        parts = key.strip().split(".")
        node: Any = raw
        for depth, part in enumerate(parts[:-1]):
            where = ".".join(parts[: depth + 1])
            if isinstance(node, list):
                if part.isdigit() and int(part) == len(node) and all(isinstance(t, dict) for t in node):
                    node.append({})  # the next index adds a table: --set attack.4.name=square
                elif not part.isdigit() or int(part) > len(node):
                    raise ConfigError(f"--set {key}: {where} needs an index below {len(node)}, or {len(node)} to "
                                      "add a table")
                node = node[int(part)]
            else:
                node = node.setdefault(part, {})
            if not isinstance(node, (dict, list)):
                raise ConfigError(f"--set {key}: {where} is {node!r}, not a table")
        last = parts[-1]
        if isinstance(node, list):
            if not last.isdigit() or int(last) >= len(node):
                raise ConfigError(f"--set {key}: index {last} out of range")
            node[int(last)] = parse_value(value.strip())
        else:
            node[last] = parse_value(value.strip())
            _relabel(raw, parts, value.strip())
    return raw


_NOT_PARAMETERS = {"label", "target", "sweep", "defenses", "name"}


def _relabel(raw: dict[str, Any], parts: list[str], value: str) -> None:
    """A label written for the TOML's parameters ("PGD-10") must not name an overridden run:
    ``--set attack.1.steps=20`` makes it "PGD-10 [steps=20]" so the table says what ran."""
    if len(parts) == 3 and parts[0] == "attack" and parts[1].isdigit() and parts[2] not in _NOT_PARAMETERS:
        table = raw["attack"][int(parts[1])]
        if isinstance(table, dict) and isinstance(table.get("label"), str):
            table["label"] = f"{table['label']} [{parts[2]}={value}]"


def read_toml(path: str | Path) -> dict[str, Any]:
    p = Path(path)
    if not p.is_file():
        raise ConfigError(f"{p}: no such config file")
    try:
        return tomllib.loads(p.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise ConfigError(f"{p}: not a text (UTF-8) file; a config is a TOML file") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{p}: TOML syntax error: {exc}") from None
