"""Malformed venue data is rejected and logged; it never crashes the engine or sends an order.

The engine runs on the real simulated exchange behind a wrapper that corrupts some of what the
venue says: tickers (NaN, negative, crossed, IV in percent), books, fills and positions."""

from __future__ import annotations

import asyncio
import dataclasses
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bot.clock import LiveClock
from bot.config import Settings
from bot.core.market import BookLevel, OrderBook, Ticker
from bot.core.orders import Fill, PositionReport, Side
from bot.engine import Engine
from bot.events import EventBus
from bot.io.journal import Journal
from bot.venues.sim import SimVenue
from tests.helpers import Sink

PERP = "BTC/USDT:USDT"
SPEED = 50.0
NAN = float("nan")


def test_problems_are_named() -> None:
    t = Ticker(PERP, 1, 100.0, 101.0)
    assert t.problem() is None
    assert "bid" in (dataclasses.replace(t, bid=NAN).problem() or "")
    assert "ask" in (dataclasses.replace(t, ask=-1.0).problem() or "")
    assert "crossed" in (dataclasses.replace(t, bid=102.0).problem() or "")
    assert "fraction" in (dataclasses.replace(t, iv=61.27).problem() or "")
    for name in ("bid", "ask", "last", "mark", "index"):
        for bad in (NAN, 0.0, -1.0, math.inf):
            assert (dataclasses.replace(t, **{name: bad}).problem() or "").startswith(name)
    assert "venue_delta" in (dataclasses.replace(t, venue_delta=NAN).problem() or "")
    assert "fraction" in (dataclasses.replace(t, iv=NAN).problem() or "")
    b = OrderBook(PERP, 1, (BookLevel(100, 1), BookLevel(99, 2)), (BookLevel(101, 1),))
    assert b.problem() is None
    assert "sorted" in (dataclasses.replace(b, bids=b.bids[::-1]).problem() or "")
    assert "crossed" in (dataclasses.replace(b, asks=(BookLevel(99.5, 1),)).problem() or "")
    assert "amount" in (dataclasses.replace(b, asks=(BookLevel(101, NAN),)).problem() or "")
    f = Fill("c", PERP, Side.BUY, 1.0, 100.0, 0.1, "USDT", 1, "t")
    assert f.problem() is None
    assert "amount" in (dataclasses.replace(f, amount=-1.0).problem() or "")
    assert "price" in (dataclasses.replace(f, price=math.inf).problem() or "")


class Corrupting:
    """The real SimVenue; every third ticker and book of the hedge is garbage, the first fill
    stream message carries a fill with a NaN amount, and a position stream says NaN."""

    def __init__(self, inner: SimVenue) -> None:
        self._inner = inner
        self.name = inner.name
        self.n_ticker = 0
        self.n_book = 0
        self.sent_bad_fill = False

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def watch_ticker(self, symbol: str) -> Ticker:
        t = await self._inner.watch_ticker(symbol)
        self.n_ticker += 1
        bad = [
            dataclasses.replace(t, bid=NAN, ask=NAN, mark=NAN, index=NAN),
            dataclasses.replace(t, bid=-5.0, index=-5.0),
            dataclasses.replace(t, bid=(t.ask or 1) * 2, index=(t.ask or 1) * 2),
        ]
        return bad[self.n_ticker // 3 % 3] if self.n_ticker % 3 == 0 else t

    async def watch_order_book(self, symbol: str) -> OrderBook:
        b = await self._inner.watch_order_book(symbol)
        self.n_book += 1
        if self.n_book % 3 == 0:
            return dataclasses.replace(b, bids=b.bids[::-1])
        return b

    async def watch_fills(self) -> Sequence[Fill]:
        fills = await self._inner.watch_fills()
        if fills and not self.sent_bad_fill:
            self.sent_bad_fill = True
            junk = dataclasses.replace(fills[0], amount=NAN, trade_id="junk-1")
            return [junk, *fills]
        return fills

    async def watch_positions(self) -> Sequence[PositionReport]:
        reports = await self._inner.watch_positions()
        return [*reports, PositionReport(PERP, NAN, 0)]


async def test_engine_drops_bad_data_keeps_running_and_never_trades_on_it(tmp_path: Path) -> None:
    settings = Settings(
        journal={"path": tmp_path / "journal.sqlite"},
        engine={"stale_after_s": 60},
        sim={"seed": 5, "speed": SPEED, "underlyings": {"BTC": {"price": 60_000.0, "vol": 0.8}}},
        positions=[{"underlying": "BTC", "kind": "spot", "qty": 3.0}],
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
    venue = Corrupting(inner)
    sink = Sink()
    journal = Journal(settings.journal.path)
    engine = Engine(settings, {"sim": venue}, clock, EventBus(sink, journal), journal=journal)  # type: ignore[dict-item]
    stop = asyncio.Event()
    run = asyncio.create_task(engine.run(stop))
    await asyncio.sleep(120 / SPEED)
    stop.set()
    summary = await asyncio.wait_for(run, 30)
    journal.close()

    problems = {d["problem"].split(" ")[0].rstrip(":") for d in sink.named("market.bad_data")}
    assert {"bid", "crossed"} <= problems, problems
    assert any(d["data"] == "book" for d in sink.named("market.bad_data"))
    assert sink.named("fill.bad_data") and sink.named("position.bad_data")
    assert not sink.named("decision.failed")
    # it hedged, from sane prices only, and its books agree with the venue's
    sent = sink.named("order.sent")
    assert sent, "the long spot should have been hedged"
    for o in sent:
        assert math.isfinite(o["price"]) and 50_000 < o["mid"] < 70_000, o
    assert engine.ledger.positions[("sim", PERP)] == inner.exchange.ledger.qty(PERP)
    assert abs(summary["delta"]["BTC"]["delta_coin"]) < 1.0
