"""A lagging position read (the venue says 0 for a while after our hedge filled) never causes a
second hedge for the same drift: the engine on the real simulated exchange, with a wrapper that
makes its position reads (REST and stream) lag."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.clock import LiveClock
from bot.config import Settings
from bot.core.orders import PositionReport
from bot.engine import Engine
from bot.events import EventBus
from bot.io.journal import Journal
from bot.venues.sim import SimVenue
from tests.helpers import Sink

PERP = "BTC/USDT:USDT"
SPEED = 20.0


class LaggingPositions:
    """The real SimVenue, except that a change of the hedge position shows up in
    fetch_positions and watch_positions only `lag_ms` of clock time after it happened."""

    def __init__(self, inner: SimVenue, clock: LiveClock, symbol: str, lag_ms: int) -> None:
        self._inner = inner
        self._clock = clock
        self._symbol = symbol
        self._lag_ms = lag_ms
        self._shown: float | None = None
        self._changed_at: int | None = None
        self.lagged_reads = 0
        self.name = inner.name

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def _view(self, reports: Sequence[PositionReport]) -> list[PositionReport]:
        # Like real venues, a flat position is simply not listed.
        q = next((r.qty for r in reports if r.symbol == self._symbol), 0.0)
        now = self._clock.now_ms()
        if self._shown is None:
            self._shown = q
        if abs(q - self._shown) > 1e-12:
            if self._changed_at is None:
                self._changed_at = now
            if now - self._changed_at >= self._lag_ms:
                self._shown, self._changed_at = q, None
            else:
                self.lagged_reads += 1
        else:
            self._changed_at = None
        out = [r for r in reports if r.symbol != self._symbol]
        if self._shown != 0.0:
            out.append(PositionReport(self._symbol, self._shown, now))
        return out

    async def fetch_positions(self) -> Sequence[PositionReport]:
        return self._view(await self._inner.fetch_positions())

    async def watch_positions(self) -> Sequence[PositionReport]:
        reports = await self._inner.watch_positions()
        if not any(r.symbol == self._symbol for r in reports):
            return reports  # news about other lines only
        return self._view(reports)


async def test_lagging_position_read_never_hedges_the_same_drift_twice(tmp_path: Path) -> None:
    settings = Settings(
        journal={"path": tmp_path / "journal.sqlite"},
        engine={"stale_after_s": 60, "reconcile_interval_s": 5},
        sim={
            "seed": 2,
            "speed": SPEED,
            "latency_ms": 50,
            # A quiet market: the only drift is the one the starting position brings.
            "underlyings": {"BTC": {"price": 60_000.0, "vol": 0.0001, "jump_intensity": 0.0}},
        },
        positions=[
            {
                "underlying": "BTC",
                "kind": "option",
                "settlement": "linear",
                "option_type": "call",
                "strike": 60_000,
                "expiry_days": 30,
                "qty": -10,
            }
        ],
        hedge={
            "BTC": {
                "account": "sim",
                "instrument": PERP,
                "unit": "coin",
                "policy": {"kind": "band", "band": 0.3},
            }
        },
    )
    clock = LiveClock(SPEED)
    inner = SimVenue("sim", settings.sim, settings.positions, clock)
    venue = LaggingPositions(inner, clock, PERP, lag_ms=40_000)  # 8x the fill settle window
    sink = Sink()
    journal = Journal(settings.journal.path)
    engine = Engine(settings, {"sim": venue}, clock, EventBus(sink, journal), journal=journal)  # type: ignore[dict-item]
    stop = asyncio.Event()
    run = asyncio.create_task(engine.run(stop))
    await asyncio.sleep(90 / SPEED)  # 90 s of clock: the lag starts and ends inside it
    stop.set()
    await asyncio.wait_for(run, 30)
    journal.close()

    assert venue.lagged_reads > 0, "the position reads did lag"
    sent = sink.named("order.sent")
    assert len(sent) == 1, [(s["client_id"], s["amount"]) for s in sent]
    # The venue holds exactly the one hedge (about +5 BTC for -10 ATM calls), not two.
    held = inner.exchange.ledger.qty(PERP)
    assert held == sent[0]["amount"]
    assert 3.0 < held < 7.0
    assert abs(engine.exposure("BTC").delta_coin) <= 0.3 + 0.01  # type: ignore[union-attr]
