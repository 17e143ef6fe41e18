"""What changed between two configs, as dotted keys, secrets masked: the audit line of a reload."""

from __future__ import annotations

from typing import Any

from bot.config import Settings
from bot.config_errors import SECRET_FIELDS

MASK = "**********"


def flatten(data: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(data, dict):
        out: dict[str, Any] = {}
        for key, value in data.items():
            out.update(flatten(value, f"{prefix}.{key}" if prefix else str(key)))
        return out
    return {prefix: data}


def _shown(key: str, value: Any) -> Any:
    if any(part.lower() in SECRET_FIELDS for part in key.split(".")):
        return MASK if value is not None else None
    return value if isinstance(value, str | int | float | bool | None) else repr(value)


def changes(old: Settings, new: Settings) -> dict[str, dict[str, Any]]:
    """{dotted key: {"from": old, "to": new}} for every setting that differs."""
    a = flatten(old.model_dump(mode="json"))
    b = flatten(new.model_dump(mode="json"))
    return {
        key: {"from": _shown(key, a.get(key)), "to": _shown(key, b.get(key))}
        for key in sorted(set(a) | set(b))
        if a.get(key) != b.get(key)
    }
