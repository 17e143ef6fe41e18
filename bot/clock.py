"""The one place the shell reads time. The core never calls it: time is passed in."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    def now_ms(self) -> int: ...

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""
        ...

    def to_real(self, seconds: float) -> float:
        """Real (wall) seconds that `seconds` of this clock's time take."""
        ...


class WallClock:
    def now_ms(self) -> int:
        return time.time_ns() // 1_000_000

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0))

    def to_real(self, seconds: float) -> float:
        return seconds


class ScaledClock:
    """Simulated time that runs `speed` times faster than the wall clock (paper runs use 1.0,
    tests and quick demos more). It starts at the wall time, or at `start_ms` when given."""

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if speed <= 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._t0_ms = start_ms if start_ms is not None else time.time_ns() // 1_000_000
        self._m0 = time.monotonic()

    def now_ms(self) -> int:
        return self._t0_ms + int((time.monotonic() - self._m0) * self.speed * 1000.0)

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(max(seconds, 0.0) / self.speed)

    def to_real(self, seconds: float) -> float:
        return seconds / self.speed
