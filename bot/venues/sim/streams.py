"""Stream plumbing for the simulated venue: wake-up signals and one-consumer update buffers."""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Iterable
from typing import Generic, TypeVar

T = TypeVar("T")

STREAMS = ("ticker", "order_book", "orders", "fills", "positions")


class Signal:
    """Wakes every current waiter once per `fire()`."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        self._event.set()
        self._event = asyncio.Event()

    async def wait(self) -> None:
        await self._event.wait()


class Updates(Generic[T]):
    """New updates since the consumer's last take (ccxt `newUpdates`), for one consumer.
    Bounded, as ccxt's caches are, so an unread stream cannot grow without limit."""

    def __init__(self, maxlen: int = 10_000) -> None:
        self._buf: deque[T] = deque(maxlen=maxlen)

    def push(self, items: Iterable[T]) -> None:
        self._buf.extend(items)

    def take(self) -> list[T]:
        out = list(self._buf)
        self._buf.clear()
        return out

    def __len__(self) -> int:
        return len(self._buf)
