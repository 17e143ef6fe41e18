"""Balances read by REST reconciliation move the "usd" view's delta, and our fills move it in
between: the real hedger, reconciler and simulated exchange on a virtual clock."""

from __future__ import annotations

import pytest

from bot.clock import VirtualClock, run_virtual
from bot.config import Settings
from bot.core.book import LineKey
from bot.core.instruments import Instrument
from bot.core.orders import Fill, Side
from bot.events import EventBus
from bot.hedger.hedger import Hedger
from bot.shell.positions import PositionWatch
from bot.shell.reconcile import Reconciler
from bot.venues.sim import SimVenue
from tests.helpers import Sink

START = 1_767_225_600_000
PERP = "BTC/USD:BTC"


def settings(view: str) -> Settings:
    return Settings(
        engine={"hedge_view": view, "stale_after_s": 600},
        sim={"seed": 3, "balances": {"BTC": 2.0, "USDT": 1000.0}},
        accounts={"sim": {"exchange": "sim"}},
        positions=[
            {"symbol": PERP, "qty": -6000},  # 60000 USD short: 1 BTC at the start price
            {"symbol": "BTC/USDT", "qty": 0.25},  # spot: counted once, in the balance
        ],
        hedge={"BTC": {"instrument": PERP, "policy": {"kind": "band", "band": 1000.0}}},
    )


async def deltas(view: str) -> tuple[float, float, float, float]:
    s = settings(view)
    clock = VirtualClock(START)
    venue = SimVenue("sim", s.sim, s.positions, clock, run_market=False)
    catalog: dict[LineKey, Instrument] = {}
    hedger = Hedger(s, {"sim": venue}, catalog, clock, EventBus(Sink()), None)
    await venue.connect()
    for symbol, ins in (await venue.load_instruments()).items():
        catalog[("sim", symbol)] = ins
    hedger.add_hedge_lines()
    reconciler = Reconciler(
        {"sim": venue}, hedger, PositionWatch({}, hedger, 0, lambda: None), clock, None
    )
    await reconciler.reconcile(initial=True)
    ex = venue.exchange

    def delta() -> float:
        for symbol in (PERP, "BTC/USDT"):
            hedger.on_ticker("sim", ex.ticker(symbol))
        exp = hedger.exposure("BTC")
        assert exp is not None
        return exp.delta_coin

    first = delta()
    ex.ledger.balances["BTC"] += 0.5  # a deposit: no fill of ours explains it
    await clock.advance_to(START + 60_000)
    await reconciler.reconcile()
    after_deposit = delta()
    # our own fill: buy back 1200 contracts (12000 USD) of the perp
    price = ex.ticker(PERP).mid or 0.0
    hedger.on_fills(
        "sim", [Fill("x", PERP, Side.BUY, 1200.0, price, 0.0, "BTC", START + 61_000, "t1")]
    )
    after_fill = delta()
    await venue.close()
    return first, after_deposit, after_fill, price


def test_balance_reads_move_the_usd_view_delta() -> None:
    first, after_deposit, after_fill, price = run_virtual(lambda: deltas("usd"))
    # 2 BTC + 0.25 spot, less the 1 BTC short perp: spot counted once (the balance holds it)
    assert first == pytest.approx(2.25 - 1.0, abs=1e-3)
    assert after_deposit - first == pytest.approx(0.5, abs=1e-9)
    # a fill moves the perp's delta (+1200 x 10 / P) and nothing else: its coin is not yet paid
    assert after_fill - after_deposit == pytest.approx(12_000.0 / price, rel=1e-6)


def test_coin_view_ignores_balances() -> None:
    first, after_deposit, _, _ = run_virtual(lambda: deltas("coin"))
    assert first == pytest.approx(-1.0, abs=1e-3)
    assert after_deposit == pytest.approx(first, abs=1e-12)
