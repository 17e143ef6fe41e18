"""A minimal TOML writer for tests that generate config files (the standard library only reads
TOML). Handles what configs hold: scalars, lists of scalars, tables and arrays of tables."""

from __future__ import annotations

import json
import math
from typing import Any


def dumps(doc: dict[str, Any]) -> str:
    lines: list[str] = []
    _table(doc, [], lines)
    return "\n".join(lines) + "\n"


def _key(k: str) -> str:
    return json.dumps(str(k))


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, int):
        return str(v)
    if isinstance(v, str):
        return json.dumps(v)
    if isinstance(v, list):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{" + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + "}"
    raise TypeError(f"cannot write {type(v).__name__} as TOML")


def _is_tables(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, dict) for x in v)


def _table(doc: dict[str, Any], path: list[str], lines: list[str]) -> None:
    for k, v in doc.items():
        if not isinstance(v, dict) and not _is_tables(v):
            lines.append(f"{_key(k)} = {_value(v)}")
    for k, v in doc.items():
        if isinstance(v, dict):
            lines.append(f"[{'.'.join(_key(p) for p in [*path, k])}]")
            _table(v, [*path, k], lines)
        elif _is_tables(v):
            for item in v:
                lines.append(f"[[{'.'.join(_key(p) for p in [*path, k])}]]")
                _table(item, [*path, k], lines)
