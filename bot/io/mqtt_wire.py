"""The MQTT wire format shared by the bridge and the operator tools: the topic names and strict,
compact JSON."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    bot_id: str

    def _t(self, suffix: str) -> str:
        return f"{self.prefix}/{self.bot_id}/{suffix}"

    @property
    def status(self) -> str:
        return self._t("status")

    @property
    def state(self) -> str:
        return self._t("state")

    @property
    def events(self) -> str:
        return self._t("events")

    @property
    def cmd(self) -> str:
        return self._t("cmd")

    @property
    def reply(self) -> str:
        return self._t("cmd/reply")

    @property
    def positions(self) -> str:
        return self._t("positions/in")

    @property
    def instance(self) -> str:
        return self._t("instance")


def _finite(obj: Any) -> Any:
    """Replace NaN/Infinity (not JSON) by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> bytes:
    """Strict, compact JSON; unknown types as str, non-finite floats as null."""
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False, default=str)
    return text.encode("utf-8")


def as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8")
