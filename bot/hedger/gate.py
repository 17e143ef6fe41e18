"""The corridors in force, one per underlying, with the timer that ends each (see corridor.py).

A corridor stands for "nothing but the index moved since a decision that did not trade": the
hedger drops it on anything else that changes exposure or trading (it marks the underlying dirty,
or calls `clear`), and the timer drops it when time decay could have used up its margin (or a
feed could go stale), so the next tick decides afresh.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.clock import Clock, Timer
from bot.core.book import LineKey
from bot.hedger.corridor import Corridor


@dataclass(slots=True)
class Held:
    """A corridor in force: valid while the reference ticker's index stays in [lo, hi], is no
    older than `stale_ms` (else the decision would be a halt) and the feeds are as they were
    (feeds_version)."""

    lo: float
    hi: float
    ref: LineKey  # the hedge line whose ticker carries the index
    ref_ts_ms: int  # its newest ticker's time
    stale_ms: float
    feeds_version: int
    corridor: Corridor


class CorridorGate:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.held: dict[str, Held] = {}
        self._timers: dict[str, Timer] = {}

    def set(self, underlying: str, held: Held) -> None:
        self.clear(underlying)
        self.held[underlying] = held

        def expire() -> None:
            # The next tick decides afresh (a decision now, between ticks, would see no newer
            # data than the last one did).
            if self.held.get(underlying) is held:
                self.clear(underlying)

        self._timers[underlying] = self.clock.call_at(held.corridor.until_ms, expire)

    def clear(self, underlying: str) -> None:
        if self.held.pop(underlying, None) is not None:
            timer = self._timers.pop(underlying, None)
            if timer is not None:
                timer.cancel()

    def clear_all(self) -> None:
        for u in list(self.held):
            self.clear(u)
