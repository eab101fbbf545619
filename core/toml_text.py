"""Write a config dict back as TOML (``advx eval --save-config``): scalars first, then one
``[section]`` per table and ``[[name]]`` per array of tables, everything deeper inline. The
standard library reads TOML but does not write it; a config needs no more than this."""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(doc: dict[str, Any]) -> str:
    def is_table_array(v: Any) -> bool:
        return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)

    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict) and not is_table_array(v)]
    for k, v in doc.items():
        if isinstance(v, dict):
            lines += ["", f"[{_key(k)}]", *(f"{_key(i)} = {_value(x)}" for i, x in v.items())]
    for k, v in doc.items():
        if is_table_array(v):
            for table in v:
                lines += ["", f"[[{_key(k)}]]", *(f"{_key(i)} = {_value(x)}" for i, x in table.items())]
    return "\n".join(lines).lstrip("\n") + "\n"


def _key(k: str) -> str:
    return k if k and k.replace("_", "").replace("-", "").isalnum() else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float) and not math.isfinite(v):
        return "nan" if math.isnan(v) else ("inf" if v > 0 else "-inf")
    if isinstance(v, (int, float, str)):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")
