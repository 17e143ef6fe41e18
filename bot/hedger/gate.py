"""The corridors in force, one per underlying, with the timer that ends each (see corridor.py).

A corridor stands for "nothing but the index moved since a decision that did not trade": the
hedger drops it on anything else that changes exposure or trading (it marks the underlying dirty,
or calls `clear`), and the timer drops it when time decay could have used up its margin (or a
feed could go stale), so the next tick decides afresh.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from bot.clock import Clock, Timer
from bot.config import EngineConfig
from bot.core.book import Columns, Exposure, FloatArray, LineKey
from bot.core.market import Ticker
from bot.core.policy import HedgeDecision
from bot.hedger.corridor import Corridor, corridor
from bot.hedger.corridor_grid import CostWidth


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

    def absorbs(self, underlying: str, key: LineKey, ticker: Ticker, feeds_version: int) -> bool:
        """Is this (stored) ticker inside the underlying's corridor, so no decision is due? Its
        IV must not have moved (the caller checks), the feeds must be as they were, and the
        hedge line's ticker fresh (else the decision would be a halt)."""
        held = self.held.get(underlying)
        if held is None or held.feeds_version != feeds_version:
            return False
        if key != held.ref:
            # The index comes from the hedge line; other lines bring only IVs.
            return self.clock.now_ms() - held.ref_ts_ms <= held.stale_ms
        index = ticker.index if ticker.index is not None else ticker.mid
        if index is None or not held.lo <= index <= held.hi:
            return False
        if self.clock.now_ms() - ticker.ts_ms > held.stale_ms:
            return False
        held.ref_ts_ms = ticker.ts_ms
        return True

    def after_decision(
        self,
        decision: HedgeDecision,
        exp: Exposure,
        inputs: tuple[Columns, FloatArray, FloatArray, float],
        ref_ticker: Ticker,
        ref: LineKey,
        eng: EngineConfig,
        quiet_until_ms: int,
        feeds_version: int,
        coin_equity: bool = False,
        width: CostWidth | None = None,
    ) -> None:
        """After a decision that does not trade: inside the band, the index range (and time) in
        which the next decisions would be the same; with an order in flight, every price gives
        the same decision until the order moves (which drops the corridor). `inputs`: what the
        exposure was computed from (MarketView.inputs_of); `quiet_until_ms`: when a feed could
        go stale (a decision then would halt) or an external position expire; `width`: the band's
        half-width is sized by gamma (see corridor_grid.py)."""
        now = self.clock.now_ms()
        refresh_ms = int(eng.corridor_refresh_s * 1000)
        c: Corridor | None
        if decision.reason == "order_in_flight":
            c = Corridor(lo=0.0, hi=math.inf, until_ms=now + refresh_ms)
        elif decision.reason == "inside_band":
            cols, qty, iv, rate = inputs
            bounds = decision.bounds
            c = corridor(
                cols,
                qty,
                iv,
                exp.price,
                rate,
                now,
                exp.delta_coin,
                bounds,
                refresh_ms,
                coin_equity,
                width,
                exp.gamma_coin,
            )
        else:
            c = None
        if c is None:
            return
        if quiet_until_ms < c.until_ms:
            c = replace(c, until_ms=quiet_until_ms)
        if c.until_ms <= now:
            return
        stale_ms = eng.stale_after_s * 1000
        self.set(
            decision.underlying, Held(c.lo, c.hi, ref, ref_ticker.ts_ms, stale_ms, feeds_version, c)
        )

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
