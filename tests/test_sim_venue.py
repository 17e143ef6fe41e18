"""SimVenue behind the Venue interface: orders, fills, fees, rejects, streams, faults."""

from __future__ import annotations

import asyncio
import math
from typing import Any

import pytest

from bot.clock import LiveClock
from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.orders import OrderRequest, OrderStatus, Side
from bot.venues.base import (
    Venue,
    VenueAmbiguous,
    VenueRejected,
    VenueTransient,
)
from bot.venues.sim import SimVenue

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
PERP = "BTC/USDT:USDT"
INV = "BTC/USD:BTC"


class ManualClock:
    """Time moves only when something sleeps or the test advances it."""

    def __init__(self, start_ms: int = T0) -> None:
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)
        await asyncio.sleep(0)

    def to_real(self, seconds: float) -> float:
        return 0.0

    def advance(self, ms: int) -> None:
        self.ms += ms


def config(**kw: Any) -> SimConfig:
    """A quiet market (no jumps, almost no vol), so prices stay where the test put them."""
    base: dict[str, Any] = {
        "seed": 5,
        "underlyings": {"BTC": SimUnderlying(price=60_000.0, vol=1e-6, jump_intensity=0.0)},
        "balances": {"USDT": 1_000_000.0, "USDC": 1_000_000.0, "BTC": 1.0},
    }
    base.update(kw)
    return SimConfig(**base)


async def make(
    cfg: SimConfig | None = None, positions: list[PositionConfig] | None = None
) -> tuple[SimVenue, ManualClock]:
    clock = ManualClock()
    venue = SimVenue("sim", cfg or config(), positions or [], clock, run_market=False)
    await venue.connect()
    return venue, clock


def advance(venue: SimVenue, clock: ManualClock, ms: int = 1000) -> None:
    clock.advance(ms)
    venue.tick()


def req(cid: str, side: Side, amount: float, price: float, **kw: Any) -> OrderRequest:
    return OrderRequest(cid, kw.pop("symbol", PERP), side, amount, price, **kw)


def test_is_a_venue() -> None:
    venue: Venue = SimVenue("sim", config(), [], ManualClock())
    assert venue.name == "sim"


async def test_tickers_and_option_marks() -> None:
    positions = [
        PositionConfig(
            underlying="BTC",
            kind="option",
            settlement="inverse",
            option_type="put",
            strike=60_000,
            expiry_days=30,
            qty=1,
        ),
        PositionConfig(
            underlying="BTC",
            kind="option",
            option_type="call",
            strike=60_000,
            expiry_days=30,
            qty=1,
        ),
    ]
    cfg = config(underlyings={"BTC": SimUnderlying(price=60_000.0, vol=0.5, jump_intensity=0)})
    venue, _ = await make(cfg, positions)
    instruments = await venue.load_instruments()
    inv_put = next(s for s in instruments if s.endswith("-P"))
    lin_call = next(s for s in instruments if s.endswith("-C"))
    perp = await venue.fetch_ticker(PERP)
    assert perp.index == perp.mark == 60_000.0 and perp.iv is None
    assert perp.bid is not None and perp.ask is not None and perp.bid < 60_000.0 < perp.ask
    put = await venue.fetch_ticker(inv_put)
    call = await venue.fetch_ticker(lin_call)
    assert put.iv == call.iv == 0.5
    # ATM with no rate: call and put worth the same in USD; the coin put is marked in coin.
    assert call.mark is not None and put.mark is not None
    assert put.mark == pytest.approx(call.mark / 60_000.0)
    assert 0.04 < put.mark < 0.07
    assert put.bid is not None and put.ask is not None and put.bid < put.mark < put.ask
    # option spread is the wider option_spread_bps (50) of the mark
    assert call.bid is not None and call.ask is not None
    assert (call.ask - call.bid) / call.mark * 1e4 == pytest.approx(50.0, abs=1.0)
    assert put.venue_delta is not None and call.venue_delta is not None
    assert put.venue_delta < -0.4 and 0.5 < call.venue_delta < 0.6


async def test_starting_positions_open_at_fair_without_fee() -> None:
    positions = [
        PositionConfig(underlying="BTC", kind="spot", qty=2.0),
        PositionConfig(symbol=INV, qty=-600.0),
        PositionConfig(underlying="BTC", kind="future", expiry_days=7, qty=0.5),
    ]
    venue, _ = await make(positions=positions)
    held = {p.symbol: p.qty for p in await venue.fetch_positions()}
    assert held == {"BTC/USDT": 2.0, INV: -600.0, "BTC/USDT:USDT-260108": 0.5}
    balances = await venue.fetch_balances()
    assert balances["USDT"] == pytest.approx(1_000_000.0 - 120_000.0)
    assert balances["BTC"] == pytest.approx(3.0)
    assert await venue.fetch_fills("none", PERP) == []


async def test_marketable_order_walks_the_book_with_taker_fee() -> None:
    venue, clock = await make()
    book = await venue.fetch_order_book(PERP)
    a0, a1, a2 = book.asks[:3]
    amount = round(a0.amount + 1.0, 3)
    t_before = clock.now_ms()
    update = await venue.create_order(req("b1", Side.BUY, amount, a1.price))
    assert clock.now_ms() - t_before == 50  # latency
    assert update.status is OrderStatus.FILLED and update.filled == amount
    fills = await venue.fetch_fills("b1", PERP)
    assert [(f.price, f.amount) for f in fills] == [(a0.price, a0.amount), (a1.price, 1.0)]
    assert all(f.fee_currency == "USDT" for f in fills)
    cost = a0.price * a0.amount + a1.price * 1.0
    assert sum(f.fee for f in fills) == pytest.approx(cost * 0.0005)
    assert update.average == pytest.approx(cost / amount)
    assert {p.symbol: p.qty for p in await venue.fetch_positions()} == {PERP: amount}
    balances = await venue.fetch_balances()
    assert balances["USDT"] == pytest.approx(1_000_000.0 - cost * 0.0005)
    # the liquidity taken is gone until the next tick
    after = await venue.fetch_order_book(PERP)
    assert after.asks[0].price == a1.price
    assert after.asks[0].amount == pytest.approx(a1.amount - 1.0)
    assert after.asks[1] == a2


async def test_limit_is_respected_and_the_rest_rests_then_fills_as_maker() -> None:
    venue, clock = await make()
    book = await venue.fetch_order_book(PERP)
    a0 = book.asks[0]
    amount = round(a0.amount + 2.0, 3)
    update = await venue.create_order(req("b1", Side.BUY, amount, a0.price))
    assert update.status is OrderStatus.PARTIALLY_FILLED
    assert update.filled == a0.amount and update.remaining == pytest.approx(2.0)
    assert [o.client_id for o in await venue.fetch_open_orders()] == ["b1"]
    advance(venue, clock)  # the book refills at the same price, which crosses the resting bid
    done = await venue.fetch_order("b1", PERP)
    assert done is not None and done.status is OrderStatus.FILLED and done.filled == amount
    maker = (await venue.fetch_fills("b1", PERP))[-1]
    assert maker.price == a0.price and maker.amount == pytest.approx(2.0)
    assert maker.fee == pytest.approx(2.0 * a0.price * 0.0002)
    assert await venue.fetch_open_orders() == []


async def test_resting_order_waits_until_crossed() -> None:
    venue, clock = await make()
    book = await venue.fetch_order_book(PERP)
    bid = book.bids[0].price
    update = await venue.create_order(req("r1", Side.BUY, 0.5, round(bid - 100.0, 1)))
    assert update.status is OrderStatus.OPEN and update.filled == 0.0
    for _ in range(3):
        advance(venue, clock)
    still = await venue.fetch_order("r1", PERP)
    assert still is not None and still.status is OrderStatus.OPEN
    cancelled = await venue.cancel_order("r1", PERP)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED
    assert cancelled.remaining == 0.0
    # cancelling again leaves it as it is; an unknown id is None
    again = await venue.cancel_order("r1", PERP)
    assert again is not None and again.status is OrderStatus.CANCELLED
    assert await venue.cancel_order("nope", PERP) is None


async def test_inverse_fees_in_coin() -> None:
    venue, _ = await make()
    ask = (await venue.fetch_order_book(INV)).asks[0]
    update = await venue.create_order(req("i1", Side.BUY, 100.0, ask.price, symbol=INV))
    assert update.status is OrderStatus.FILLED
    (fill,) = await venue.fetch_fills("i1", INV)
    assert fill.fee_currency == "BTC"
    assert fill.fee == pytest.approx(100.0 * 10.0 / ask.price * 0.0005)
    balances = await venue.fetch_balances()
    assert balances["BTC"] == pytest.approx(1.0 - fill.fee)
    assert balances["USDT"] == 1_000_000.0


async def test_option_premium_and_fee_in_settlement_currency() -> None:
    pos = PositionConfig(
        underlying="BTC", kind="option", option_type="call", strike=60_000, expiry_days=30, qty=0.01
    )
    cfg = config(underlyings={"BTC": SimUnderlying(price=60_000.0, vol=0.5, jump_intensity=0)})
    venue, _ = await make(cfg, [pos])
    sym = next(s for s in await venue.load_instruments() if s.endswith("-C"))
    start = (await venue.fetch_balances())["USDC"]
    ask = (await venue.fetch_order_book(sym)).asks[0]
    await venue.create_order(req("o1", Side.BUY, 1.0, ask.price, symbol=sym))
    (fill,) = await venue.fetch_fills("o1", sym)
    assert fill.fee_currency == "USDC" and fill.fee == pytest.approx(60_000.0 * 0.0005)
    assert (await venue.fetch_balances())["USDC"] == pytest.approx(start - ask.price - fill.fee)
    assert {p.symbol: p.qty for p in await venue.fetch_positions()}[sym] == pytest.approx(1.01)


@pytest.mark.parametrize(
    ("request_", "reason"),
    [
        (req("x", Side.BUY, 1.0, 60_000.0, symbol="DOGE/USDT"), "unknown symbol"),
        (req("x", Side.BUY, 0.0015, 70_000.0), "amount is not a multiple of the amount step"),
        (req("x", Side.BUY, 0.0, 70_000.0), "amount is not a multiple of the amount step"),
        (req("x", Side.BUY, 1.0, 70_000.05), "price is not a multiple of the price step"),
        (req("x", Side.BUY, 1.0, -1.0), "invalid price"),
        (req("x", Side.SELL, 1.0, 50_000.0, reduce_only=True), "reduce-only"),
    ],
)
async def test_invalid_orders_are_rejected_and_recorded(
    request_: OrderRequest, reason: str
) -> None:
    venue, _ = await make()
    with pytest.raises(VenueRejected, match=reason):
        await venue.create_order(request_)
    seen = await venue.fetch_order("x", request_.symbol)
    assert seen is not None and seen.status is OrderStatus.REJECTED
    assert seen.reason is not None and reason in seen.reason
    assert await venue.fetch_positions() == []


async def test_duplicate_client_id_rejected_and_first_order_untouched() -> None:
    venue, _ = await make()
    first = await venue.create_order(req("d1", Side.BUY, 0.1, 59_000.0))
    with pytest.raises(VenueRejected, match="duplicate client order id"):
        await venue.create_order(req("d1", Side.BUY, 0.2, 70_000.0))
    again = await venue.fetch_order("d1", PERP)
    assert again == first
    assert await venue.fetch_positions() == []


async def test_random_rejects_follow_the_rate() -> None:
    venue, _ = await make(config(reject_rate=0.3))
    rejected = 0
    for i in range(300):
        try:
            await venue.create_order(req(f"r{i}", Side.BUY, 0.001, 50_000.0))
        except VenueRejected as e:
            assert str(e) == "simulated reject"
            rejected += 1
    assert 60 <= rejected <= 120


async def test_post_only() -> None:
    venue, _ = await make()
    book = await venue.fetch_order_book(PERP)
    with pytest.raises(VenueRejected, match="post-only"):
        await venue.create_order(req("p1", Side.BUY, 0.1, book.asks[0].price, post_only=True))
    ok = await venue.create_order(req("p2", Side.SELL, 0.1, book.asks[0].price, post_only=True))
    assert ok.status is OrderStatus.OPEN and ok.filled == 0.0


async def test_reduce_only_accepts_reductions() -> None:
    venue, _ = await make(positions=[PositionConfig(symbol=PERP, qty=1.0)])
    with pytest.raises(VenueRejected, match="exceeds"):
        await venue.create_order(req("r1", Side.SELL, 1.5, 50_000.0, reduce_only=True))
    done = await venue.create_order(req("r2", Side.SELL, 1.0, 50_000.0, reduce_only=True))
    assert done.status is OrderStatus.FILLED
    assert {p.symbol: p.qty for p in await venue.fetch_positions()} == {PERP: 0.0}


async def test_partial_fills_arrive_over_ticks() -> None:
    venue, clock = await make(config(partial_fill_rate=1.0))
    ask = (await venue.fetch_order_book(PERP)).asks[0]
    first = await venue.create_order(req("p1", Side.BUY, 1.0, ask.price))
    assert first.status is OrderStatus.PARTIALLY_FILLED
    assert 0.0 < first.filled < 1.0
    seen = [first.filled]
    for _ in range(3):
        advance(venue, clock)
        u = await venue.fetch_order("p1", PERP)
        assert u is not None
        seen.append(u.filled)
    assert seen == sorted(seen) and seen[-1] == 1.0 and 3 <= len(set(seen)) <= 4
    final = await venue.fetch_order("p1", PERP)
    assert final is not None and final.status is OrderStatus.FILLED
    fills = await venue.fetch_fills("p1", PERP)
    assert math.isclose(sum(f.amount for f in fills), 1.0) and 2 <= len(fills) <= 3
    updates = await venue.watch_orders()
    assert [u.filled for u in updates][-1] == 1.0
    assert updates[-1].status is OrderStatus.FILLED


async def test_cancel_drops_undelivered_parts() -> None:
    venue, clock = await make(config(partial_fill_rate=1.0))
    ask = (await venue.fetch_order_book(PERP)).asks[0]
    first = await venue.create_order(req("p1", Side.BUY, 1.0, ask.price))
    cancelled = await venue.cancel_order("p1", PERP)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED
    assert cancelled.filled == first.filled < 1.0
    advance(venue, clock)
    assert {p.symbol: p.qty for p in await venue.fetch_positions()} == {PERP: first.filled}


async def test_fetch_order_unknown_is_none() -> None:
    venue, _ = await make()
    assert await venue.fetch_order("never", PERP) is None
    assert await venue.fetch_fills("never", PERP) == []


async def test_update_streams_return_new_updates_only() -> None:
    venue, _ = await make()
    await venue.create_order(req("a", Side.BUY, 0.1, 50_000.0))
    await venue.create_order(req("b", Side.BUY, 0.1, 70_000.0))
    updates = await venue.watch_orders()
    assert [(u.client_id, u.status) for u in updates] == [
        ("a", OrderStatus.OPEN),
        ("b", OrderStatus.FILLED),
    ]
    fills = await venue.watch_fills()
    assert [f.client_id for f in fills] == ["b"]
    positions = await venue.watch_positions()
    assert [(p.symbol, p.qty) for p in positions] == [(PERP, 0.1)]
    waiting = asyncio.create_task(venue.watch_orders())
    await asyncio.sleep(0.01)
    assert not waiting.done()
    await venue.cancel_order("a", PERP)
    (cancel,) = await asyncio.wait_for(waiting, 1.0)
    assert cancel.client_id == "a" and cancel.status is OrderStatus.CANCELLED


async def test_watch_ticker_waits_for_the_next_tick() -> None:
    venue, clock = await make()
    waiting = asyncio.create_task(venue.watch_ticker(PERP))
    book_wait = asyncio.create_task(venue.watch_order_book(PERP))
    await asyncio.sleep(0.01)
    assert not waiting.done() and not book_wait.done()
    clock.advance(1000)
    venue.tick()
    ticker = await asyncio.wait_for(waiting, 1.0)
    book = await asyncio.wait_for(book_wait, 1.0)
    assert ticker.ts_ms == book.ts_ms == T0 + 1000
    with pytest.raises(VenueRejected):
        await venue.watch_ticker("NOPE/USDT")


async def test_fault_inject_reject() -> None:
    venue, _ = await make()
    venue.inject_reject("margin call")
    with pytest.raises(VenueRejected, match="margin call"):
        await venue.create_order(req("f1", Side.BUY, 0.1, 70_000.0))
    ok = await venue.create_order(req("f2", Side.BUY, 0.1, 70_000.0))
    assert ok.status is OrderStatus.FILLED


async def test_fault_lost_response_leaves_exactly_one_order() -> None:
    venue, _ = await make()
    venue.inject_lost_response()
    with pytest.raises(VenueAmbiguous):
        await venue.create_order(req("amb", Side.BUY, 0.1, 70_000.0))
    found = await venue.fetch_order("amb", PERP)
    assert found is not None and found.status is OrderStatus.FILLED and found.filled == 0.1
    # A resend with the same id cannot double the position.
    with pytest.raises(VenueRejected, match="duplicate"):
        await venue.create_order(req("amb", Side.BUY, 0.1, 70_000.0))
    assert {p.symbol: p.qty for p in await venue.fetch_positions()} == {PERP: 0.1}
    assert len(await venue.fetch_fills("amb", PERP)) == 1
    assert [u.client_id for u in await venue.watch_orders()] == ["amb"]


async def test_fault_lost_request_is_never_seen() -> None:
    venue, _ = await make()
    venue.inject_lost_request()
    with pytest.raises(VenueAmbiguous):
        await venue.create_order(req("lost", Side.BUY, 0.1, 70_000.0))
    assert await venue.fetch_order("lost", PERP) is None
    resent = await venue.create_order(req("lost", Side.BUY, 0.1, 70_000.0))
    assert resent.status is OrderStatus.FILLED


async def test_fault_paused_stream_hangs_until_resumed() -> None:
    venue, clock = await make()
    venue.pause_stream("ticker")
    waiting = asyncio.create_task(venue.watch_ticker(PERP))
    for _ in range(3):
        clock.advance(1000)
        venue.tick()
        await asyncio.sleep(0)
    assert not waiting.done()
    # other streams are unaffected
    book = await asyncio.wait_for(
        asyncio.gather(venue.watch_order_book(PERP), _tick_soon(venue, clock)), 1.0
    )
    assert book[0].symbol == PERP
    venue.resume_stream("ticker")
    ticker = await asyncio.wait_for(waiting, 1.0)
    assert ticker.symbol == PERP
    with pytest.raises(ValueError):
        venue.pause_stream("nope")


async def _tick_soon(venue: SimVenue, clock: ManualClock) -> None:
    await asyncio.sleep(0.01)
    clock.advance(1000)
    venue.tick()


async def test_fault_dropped_stream_raises_once() -> None:
    venue, _ = await make()
    waiting = asyncio.create_task(venue.watch_fills())
    await asyncio.sleep(0)
    venue.drop_stream("fills")
    with pytest.raises(VenueTransient):
        await asyncio.wait_for(waiting, 1.0)
    await venue.create_order(req("a", Side.BUY, 0.1, 70_000.0))
    assert [f.client_id for f in await venue.watch_fills()] == ["a"]


async def test_fault_inject_error_on_a_call() -> None:
    venue, _ = await make()
    venue.inject_error("fetch_positions", VenueTransient("rate limited"))
    with pytest.raises(VenueTransient, match="rate limited"):
        await venue.fetch_positions()
    assert await venue.fetch_positions() == []
    with pytest.raises(ValueError):
        venue.inject_error("no_such_call", VenueTransient("x"))


async def test_close_fails_pending_watchers() -> None:
    venue, _ = await make()
    waiting = asyncio.create_task(venue.watch_orders())
    await asyncio.sleep(0)
    await venue.close()
    with pytest.raises(VenueTransient):
        await asyncio.wait_for(waiting, 1.0)


async def test_expiry_settles_positions_and_orders() -> None:
    pos = PositionConfig(
        underlying="BTC", kind="option", option_type="put", strike=70_000, expiry_days=1, qty=2
    )
    venue, clock = await make(positions=[pos])
    sym = next(s for s in await venue.load_instruments() if s.endswith("-P"))
    usdc = (await venue.fetch_balances())["USDC"]
    await venue.create_order(req("o1", Side.SELL, 0.1, 100_000.0, symbol=sym))
    clock.advance(2 * 86_400_000)
    venue.tick()
    order = await venue.fetch_order("o1", sym)
    assert order is not None and order.status is OrderStatus.EXPIRED
    assert sym not in await venue.load_instruments()
    assert sym not in {p.symbol for p in await venue.fetch_positions()}
    # a 70k put with the index at 60k pays 10k per coin
    assert (await venue.fetch_balances())["USDC"] == pytest.approx(usdc + 20_000.0, rel=1e-6)
    with pytest.raises(VenueRejected, match="expired"):
        await venue.create_order(req("o2", Side.BUY, 0.1, 1.0, symbol=sym))
    with pytest.raises(VenueRejected, match="expired"):
        await venue.fetch_ticker(sym)


async def test_same_seed_same_exchange() -> None:
    async def run() -> list[Any]:
        cfg = config(
            underlyings={"BTC": SimUnderlying(price=60_000.0)}, partial_fill_rate=0.5, seed=9
        )
        venue, clock = await make(cfg)
        out: list[Any] = []
        for i in range(20):
            clock.advance(1000)
            venue.tick()
            t = await venue.fetch_ticker(PERP)
            assert t.ask is not None
            side = Side.BUY if i % 2 else Side.SELL
            price = round(t.ask + 50, 1) if side is Side.BUY else round(t.ask - 100, 1)
            await venue.create_order(req(f"c{i}", side, 0.5, price))
            out.append(t)
        out.extend(await venue.watch_fills())
        out.append(await venue.fetch_balances())
        return out

    assert await run() == await run()


async def test_background_market_ticks_on_the_clock() -> None:
    cfg = config(underlyings={"BTC": SimUnderlying(price=60_000.0)}, tick_ms=1000)
    clock = LiveClock(speed=1000.0, start_ms=T0)
    venue = SimVenue("sim", cfg, [], clock)
    await venue.connect()
    try:
        seen = [await asyncio.wait_for(venue.watch_ticker(PERP), 1.0) for _ in range(5)]
        stamps = [t.ts_ms for t in seen]
        assert stamps == sorted(stamps) and len(set(stamps)) == 5
        assert len({t.mark for t in seen}) == 5  # the price moves
        update = await venue.create_order(req("bg", Side.BUY, 0.01, 70_000.0))
        assert update.status is OrderStatus.FILLED
    finally:
        await venue.close()
    with pytest.raises(VenueTransient):
        await venue.watch_ticker(PERP)
