"""Events: every decision, order, fill, reject, alert and state change is one Event.

The engine emits them to every sink (structured log, journal, MQTT). A sink must neither block the
loop nor raise: a broken sink loses telemetry, never money.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import structlog

EventKind = Literal["decision", "order", "fill", "reject", "alert", "state", "command"]


@dataclass(frozen=True, slots=True)
class Event:
    kind: EventKind
    name: str  # dotted event name, e.g. "hedge.sent"
    ts_ms: int
    data: Mapping[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {"kind": self.kind, "event": self.name, "ts_ms": self.ts_ms, **self.data}


class EventSink(Protocol):
    def emit(self, event: Event) -> None: ...


class LogSink:
    """Every event becomes one structured log line; alerts and rejects log as warnings."""

    def __init__(self) -> None:
        self._log = structlog.get_logger("hedgebot")

    def emit(self, event: Event) -> None:
        level = "warning" if event.kind in ("reject", "alert") else "info"
        getattr(self._log, level)(event.name, kind=event.kind, ts_ms=event.ts_ms, **event.data)


class EventBus:
    """Fans events out to sinks, isolating the engine from sink failures."""

    def __init__(self, *sinks: EventSink) -> None:
        self._sinks: list[EventSink] = list(sinks)
        self._log = structlog.get_logger("hedgebot.events")

    def add(self, sink: EventSink) -> None:
        self._sinks.append(sink)

    def emit(self, event: Event) -> None:
        for sink in self._sinks:
            try:
                sink.emit(event)
            except Exception as e:  # a sink must never take the engine down
                self._log.error("events.sink_failed", sink=type(sink).__name__, error=repr(e))
