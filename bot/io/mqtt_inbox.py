"""The MQTT bridge's inbound queue, bounded by payload bytes as well as by message count.

aiomqtt queues every message the broker delivers until the bridge reads it. Bounded by count
alone, a flood of large invalid payloads (each up to the broker's own limit) could pile up
hundreds of megabytes while the event loop catches up, and CPython rarely gives such memory back
to the system. Here a message that would take the queue over its byte budget is dropped (and
counted) before it is stored; the bridge reports the drops as one warning per burst.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any, cast

import aiomqtt

MAX_MESSAGES = 1_000
# Commands and positions are small (mqtt.max_payload_bytes, 64 KiB by default); this leaves room
# for a burst of them plus a few oversized ones that still get their error reply.
MAX_BYTES = 8 << 20
# aiomqtt's own warning for a message our queue refused; counted and reported by the bridge.
_AIOMQTT_DROP_MESSAGE = "Message queue is full. Discarding message."


@dataclass
class InboxStats:
    dropped: int = 0
    reported: int = 0
    queued_bytes: int = 0


def _size(message: aiomqtt.Message) -> int:
    p = message.payload
    return len(p) if isinstance(p, bytes | bytearray | str) else 16


class IncomingQueue(asyncio.Queue[aiomqtt.Message]):
    """asyncio.Queue that refuses a message (QueueFull, which aiomqtt turns into a drop) when
    it would take the queued payload bytes over `max_bytes`. One message is always admitted
    into an empty queue, so a single large payload still reaches the bridge's size check."""

    stats: InboxStats
    max_bytes: int = MAX_BYTES

    def put_nowait(self, item: aiomqtt.Message) -> None:
        size = _size(item)
        if self.qsize() > 0 and self.stats.queued_bytes + size > self.max_bytes:
            self.stats.dropped += 1
            raise asyncio.QueueFull
        try:
            super().put_nowait(item)
        except asyncio.QueueFull:
            self.stats.dropped += 1
            raise
        self.stats.queued_bytes += size

    def get_nowait(self) -> aiomqtt.Message:
        item = super().get_nowait()
        self.stats.queued_bytes -= _size(item)
        return item


def queue_type(stats: InboxStats, max_bytes: int = MAX_BYTES) -> type[IncomingQueue]:
    """An IncomingQueue class reporting into `stats` (aiomqtt instantiates the class itself)."""
    attrs: dict[str, Any] = {"stats": stats, "max_bytes": max_bytes}
    return cast(type[IncomingQueue], type("BridgeIncomingQueue", (IncomingQueue,), attrs))


class _NoDropWarnings(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return record.getMessage() != _AIOMQTT_DROP_MESSAGE


def aiomqtt_logger() -> logging.Logger:
    """aiomqtt's logger without its one-line-per-message drop warning, which a flood would turn
    into a flood of unstructured lines; the bridge logs the drop count instead."""
    logger = logging.getLogger("hedgebot.aiomqtt")
    if not any(isinstance(f, _NoDropWarnings) for f in logger.filters):
        logger.addFilter(_NoDropWarnings())
    return logger
