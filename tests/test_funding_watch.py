"""Funding rates for routing (bot/shell/funding.py) in the engine on the real simulated exchange:
a venue that fails or answers garbage is reported, never used, never stops hedging; its last
good rate goes stale after routing.funding_max_age_s and then counts as zero. The state
document shows every candidate's position, limit and funding."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from pathlib import Path
from typing import Any

from bot.clock import LiveClock
from bot.config import Settings
from bot.core.market import FundingRate
from bot.engine import Engine
from bot.events import EventBus
from bot.venues.base import VenueTransient
from bot.venues.sim import SimVenue
from tests.helpers import Sink

PERP = "BTC/USDT:USDT"
SPEED = 50.0


class BadFunding:
    """The real SimVenue; its funding reads answer once, then NaN, then fail."""

    def __init__(self, inner: SimVenue) -> None:
        self._inner = inner
        self.name = inner.name
        self.reads = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    async def fetch_funding_rate(self, symbol: str) -> FundingRate:
        self.reads += 1
        rate = await self._inner.fetch_funding_rate(symbol)
        if self.reads == 1:
            return rate
        if self.reads == 2:
            return replace(rate, rate=math.nan)
        raise VenueTransient("funding endpoint down")


async def test_bad_or_failed_funding_reads_alert_go_stale_and_trading_goes_on(
    tmp_path: Path,
) -> None:
    settings = Settings(
        journal={"path": tmp_path / "journal.sqlite"},
        engine={"stale_after_s": 60},
        routing={"funding_refresh_s": 20, "funding_max_age_s": 50},
        sim={
            "seed": 5,
            "speed": SPEED,
            "underlyings": {"BTC": {"price": 60_000.0, "vol": 0.8}},
            "funding_rate": 0.0002,
            "accounts": {"b": {"funding_rate": -0.0003}},
        },
        accounts={"a": {}, "b": {}},
        positions=[{"account": "a", "underlying": "BTC", "kind": "spot", "qty": 3.0}],
        hedge={
            "BTC": {
                "account": "a",
                "instrument": PERP,
                "unit": "coin",
                "policy": {"kind": "band", "band": 0.3},
                "candidates": [
                    {"account": "a", "instrument": PERP, "max_position_coin": 1.0},
                    {"account": "b", "instrument": PERP, "max_position_usd": 1e6},
                ],
            }
        },
    )
    clock = LiveClock(SPEED)
    a = SimVenue("a", settings.sim.for_account("a"), settings.positions, clock)
    b = BadFunding(SimVenue("b", settings.sim.for_account("b"), [], clock))
    sink = Sink()
    engine = Engine(settings, {"a": a, "b": b}, clock, EventBus(sink), journal=None)  # type: ignore[dict-item]
    stop = asyncio.Event()
    run = asyncio.create_task(engine.run(stop))
    await asyncio.sleep(130 / SPEED)
    state = engine.controls.state()
    stop.set()
    summary = await asyncio.wait_for(run, 30)

    assert b.reads >= 3
    assert [d["problem"].split(" ")[0] for d in sink.named("funding.bad_data")] == ["rate"]
    assert sink.named("funding.read_failed")
    rows = {r["account"]: r for r in state["underlyings"]["BTC"]["routing"]}
    assert rows["a"]["funding_rate"] == 0.0002 and rows["a"]["funding"] == "fresh"
    # b's last good rate (the first read) is kept but older than funding_max_age_s: stale
    assert rows["b"]["funding_rate"] == -0.0003 and rows["b"]["funding"] == "stale"
    assert rows["a"]["limit_coin"] == 1.0
    assert rows["b"]["limit_coin"] == 1e6 / state["underlyings"]["BTC"]["price"]
    # long 3 BTC spot: 1 sold on a (its limit), the rest on b
    assert rows["a"]["position_coin"] == -1.0 and rows["a"]["position"] == -1.0
    assert rows["b"]["position_coin"] < -1.5
    assert abs(summary["delta"]["BTC"]["delta_coin"]) < 0.5
    assert not sink.named("decision.failed")
    # the first route saw both rates fresh: b's negative rate makes its short dearer
    first = next(d for d in sink.named("hedge.decision") if d["trade"])
    funding = {c["account"]: c["funding_bps"] for c in first["route"]["candidates"]}
    assert funding["a"] < 0 < funding["b"]


async def test_candidates_the_executor_would_refuse_or_could_not_work_are_blocked() -> None:
    """TWAP re-checks the gap in the reference's contracts: an inverse candidate beside a
    linear reference is skipped under twap, and usable under taker. A fee above the fee cap
    is skipped too (the executor would refuse the order)."""
    from bot.execution.ledger import Ledger
    from bot.hedger.routing import Router

    def settings(mode: str, max_fee_bps: float = 10.0) -> Settings:
        return Settings(
            execution={"mode": mode, "max_fee_bps": max_fee_bps},
            hedge={
                "BTC": {
                    "instrument": PERP,
                    "policy": {"kind": "band", "band": 0.3},
                    "candidates": [
                        {"instrument": PERP, "max_position_coin": 1.0},
                        {"instrument": "BTC/USD:BTC", "max_position_coin": 1.0},
                    ],
                }
            },
        )

    venue = SimVenue("sim", settings("taker").sim, [], LiveClock(), run_market=False)
    catalog = {("sim", s): i for s, i in (await venue.load_instruments()).items()}
    for mode, blocked in (
        ("twap", [None, "twap_needs_reference_contract"]),
        ("taker", [None, None]),
    ):
        s = settings(mode)
        router = Router(lambda s=s: s, catalog, Ledger(), {}, {})  # type: ignore[misc]
        assert [c.blocked for c in router.candidates("BTC", 60_000.0, 0)] == blocked
    # a taker fee (the simulated 5 bps) above execution.max_fee_bps: the executor would refuse
    s = settings("taker", max_fee_bps=4.0)
    router = Router(lambda: s, catalog, Ledger(), {}, {})
    assert [c.blocked for c in router.candidates("BTC", 60_000.0, 0)] == ["fee_cap"] * 2
