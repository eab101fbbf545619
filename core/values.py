"""Values as a TOML file writes them, made into what a component's or a setting's annotation asks.

The config (``advx.config``) and the registry (component parameters) both go through here:
``"8/255"`` is a float wherever a float is expected, a list where a tuple is, and every error is an
:class:`advx.errors.ComponentParameterError` naming where the value was written, what was given
and what would be valid.
"""

from __future__ import annotations

import difflib
import types
import typing
from fractions import Fraction
from typing import Any, Union

import attrs

from advx.errors import ComponentParameterError


def parse_number(value: Any, where: str) -> float:
    """Floats, ints and strings such as ``"8/255"`` or ``"1e-3"`` become a float."""
    if isinstance(value, bool):
        raise ComponentParameterError(f"{where}: expected a number, got {value!r}")
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, str):
        try:
            return float(Fraction(value.replace(" ", ""))) if "/" in value else float(value)
        except (ValueError, ZeroDivisionError):
            pass
    raise ComponentParameterError(f"{where}: expected a number such as 0.03 or \"8/255\", got {value!r}")


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is typing.Literal:
        return " | ".join(repr(a) for a in typing.get_args(tp))
    if origin in (Union, types.UnionType):
        return " | ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is not None:
        args = ", ".join(_type_name(a) for a in typing.get_args(tp) if a is not Ellipsis)
        return f"{origin.__name__}[{args}]" if args else origin.__name__
    if tp is type(None):
        return "None"
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def coerce(value: Any, tp: Any, where: str) -> Any:
    """Convert a TOML value to the annotated type ``tp``; raise with ``where`` if impossible."""
    if tp is Any or tp is None:
        return value
    origin = typing.get_origin(tp)
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None and type(None) in args:
            return None
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, where)
            except ComponentParameterError:
                continue
        raise ComponentParameterError(f"{where}: expected {_type_name(tp)}, got {value!r}")
    if origin is typing.Literal:
        if value in typing.get_args(tp):
            return value
        raise ComponentParameterError(
            f"{where}: expected one of {', '.join(map(repr, typing.get_args(tp)))}, got {value!r}")
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            value = [value]
        args = [a for a in typing.get_args(tp) if a is not Ellipsis]
        inner = args[0] if args else Any
        items = [coerce(v, inner, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ComponentParameterError(f"{where}: expected a table, got {value!r}")
        return dict(value)
    if tp is float:
        return parse_number(value, where)
    if tp is int:
        if isinstance(value, bool):
            raise ComponentParameterError(f"{where}: expected an integer, got {value!r}")
        if isinstance(value, int):
            return value
        if isinstance(value, float) and value.is_integer():
            return int(value)
        raise ComponentParameterError(f"{where}: expected an integer, got {value!r}")
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise ComponentParameterError(f"{where}: expected true or false, got {value!r}")
    if tp is str:
        if isinstance(value, str):
            return value
        raise ComponentParameterError(f"{where}: expected a string, got {value!r}")
    return value


def field_table(cls: type) -> list[tuple[str, str, Any]]:
    """(name, type, default) of each init field of an attrs class."""
    attrs.resolve_types(cls)
    rows = []
    for f in attrs.fields(cls):
        if not f.init:
            continue
        default = f.default
        if isinstance(default, attrs.Factory):  # type: ignore[arg-type]
            default = default.factory() if not default.takes_self else "<derived>"
        elif default is attrs.NOTHING:
            default = "<required>"
        rows.append((f.alias or f.name, _type_name(f.type), default))
    return rows


def fields_help(cls: type) -> str:
    rows = field_table(cls)
    if not rows:
        return "it takes no parameters"
    return "valid parameters: " + ", ".join(f"{n}: {t} = {d!r}" for n, t, d in rows)


def instantiate(cls: type, params: dict[str, Any], where: str) -> Any:
    """Create ``cls(**params)`` with coercion; errors name ``where`` and list valid fields."""
    attrs.resolve_types(cls)
    fields = {(f.alias or f.name): f for f in attrs.fields(cls) if f.init}
    kwargs = {}
    for key, value in params.items():
        if key not in fields:
            hint = difflib.get_close_matches(key, list(fields), n=1)
            did = f"; did you mean {hint[0]!r}?" if hint else ""
            raise ComponentParameterError(
                f"{where}: {cls.name!r} has no parameter {key!r}{did} {fields_help(cls)}")
        kwargs[key] = coerce(value, fields[key].type, f"{where}.{key}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as exc:
        raise ComponentParameterError(f"{where}: invalid parameters for {cls.name!r}: {exc}. {fields_help(cls)}") from None
