"""PaperVenue: live books in, fills from the simulated exchange's matching code out."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping

import pytest

from bot.clock import LiveClock
from bot.config import ConfigError
from bot.config_sim import PositionConfig
from bot.core.instruments import Instrument, Kind, Settlement
from bot.core.market import BookLevel, OrderBook, Ticker
from bot.core.orders import OrderRequest, OrderStatus, Side
from bot.venues.base import VenueRejected
from bot.venues.paper import PaperVenue

PERP = Instrument(
    "BTC/USDT:USDT",
    "BTC",
    Kind.PERP,
    Settlement.LINEAR,
    1.0,
    quote="USDT",
    amount_step=0.001,
    min_amount=0.001,
    price_step=0.1,
    taker_fee=0.0005,
    maker_fee=0.0002,
)


def book(bid: float, ask: float, size: float = 1.0) -> OrderBook:
    return OrderBook(
        PERP.symbol,
        0,
        bids=(BookLevel(bid, size), BookLevel(bid - 10, size)),
        asks=(BookLevel(ask, size), BookLevel(ask + 10, size)),
    )


class FakeMarket:
    """The public half of a venue: books the test pushes, as a live stream would."""

    def __init__(self) -> None:
        self.book = book(59_990.0, 60_010.0)
        self.books: asyncio.Queue[OrderBook] = asyncio.Queue()

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def load_instruments(self) -> Mapping[str, Instrument]:
        return {PERP.symbol: PERP}

    async def watch_ticker(self, symbol: str) -> Ticker:
        return await self.fetch_ticker(symbol)

    async def fetch_ticker(self, symbol: str) -> Ticker:
        return Ticker(
            symbol, 0, self.book.best_bid, self.book.best_ask, mark=60_000.0, index=60_000.0
        )

    async def watch_order_book(self, symbol: str) -> OrderBook:
        self.book = await self.books.get()
        return self.book

    async def fetch_order_book(self, symbol: str) -> OrderBook:
        return self.book


async def venue(positions: list[PositionConfig] | None = None) -> tuple[PaperVenue, FakeMarket]:
    market = FakeMarket()
    v = PaperVenue("paper", market, positions or [], {"usdt": 1000.0}, LiveClock())
    await v.connect()
    return v, market


async def test_a_marketable_order_walks_the_live_book_and_pays_the_taker_fee() -> None:
    v, _ = await venue()
    update = await v.create_order(OrderRequest("hb1", PERP.symbol, Side.BUY, 1.5, 60_020.0))
    assert update.status is OrderStatus.FILLED and update.filled == 1.5
    fills = await v.fetch_fills("hb1", PERP.symbol)
    assert [(f.price, f.amount) for f in fills] == [(60_010.0, 1.0), (60_020.0, 0.5)]
    assert fills[0].fee == pytest.approx(60_010.0 * 0.0005)
    assert {p.symbol: p.qty for p in await v.fetch_positions()} == {PERP.symbol: 1.5}
    assert (await v.fetch_balances())["USDT"] < 1000.0  # fees paid in the settle currency
    assert [f.client_id for f in await v.watch_fills()] == ["hb1", "hb1"]
    assert (await v.watch_positions())[-1].qty == 1.5
    with pytest.raises(VenueRejected):  # one client id, one order
        await v.create_order(OrderRequest("hb1", PERP.symbol, Side.BUY, 0.1, 60_020.0))
    await v.close()


async def test_a_resting_order_fills_as_maker_when_a_live_book_trades_through_it() -> None:
    v, market = await venue()
    update = await v.create_order(OrderRequest("hb2", PERP.symbol, Side.BUY, 0.5, 59_950.0))
    assert update.status is OrderStatus.OPEN
    assert [o.client_id for o in await v.fetch_open_orders()] == ["hb2"]
    await market.books.put(book(59_900.0, 59_940.0))  # the market falls through our bid
    for _ in range(100):
        if (await v.fetch_order("hb2", PERP.symbol)).status is OrderStatus.FILLED:  # type: ignore[union-attr]
            break
        await asyncio.sleep(0.01)
    fills = await v.fetch_fills("hb2", PERP.symbol)
    assert [(f.price, f.amount) for f in fills] == [(59_950.0, 0.5)]
    assert fills[0].fee == pytest.approx(59_950.0 * 0.5 * 0.0002)
    await v.close()


async def test_starting_positions_and_reduce_only_follow_the_simulators_rules() -> None:
    v, _ = await venue([PositionConfig(account="paper", symbol=PERP.symbol, qty=-0.2)])
    assert {p.symbol: p.qty for p in await v.fetch_positions()} == {PERP.symbol: -0.2}
    with pytest.raises(VenueRejected, match="reduce-only"):
        await v.create_order(
            OrderRequest("hb3", PERP.symbol, Side.SELL, 0.1, 59_980.0, reduce_only=True)
        )
    assert (await v.fetch_order("hb3", PERP.symbol)).status is OrderStatus.REJECTED  # type: ignore[union-attr]
    await v.create_order(
        OrderRequest("hb4", PERP.symbol, Side.BUY, 0.2, 60_010.0, reduce_only=True)
    )
    assert {p.symbol: p.qty for p in await v.fetch_positions()} == {PERP.symbol: 0.0}
    await v.close()


async def test_a_starting_position_must_name_a_listed_symbol() -> None:
    market = FakeMarket()
    v = PaperVenue(
        "paper", market, [PositionConfig(account="paper", symbol="NOPE", qty=1)], {}, LiveClock()
    )
    with pytest.raises(ConfigError):
        await v.connect()


async def test_a_restarted_paper_account_never_reuses_a_trade_id() -> None:
    """Each run of the paper venue is a fresh account: its ids carry the start time, so the
    journal kept across a restart never takes a new fill for one of the run before."""
    first, _ = await venue()
    await first.create_order(OrderRequest("hb1", PERP.symbol, Side.BUY, 1.5, 60_020.0))
    before = {f.trade_id for f in await first.fetch_fills("hb1", PERP.symbol)}
    await first.close()
    await asyncio.sleep(0.002)  # a later start, by the clock
    again, _ = await venue()
    await again.create_order(OrderRequest("hb2", PERP.symbol, Side.BUY, 1.5, 60_020.0))
    after = {f.trade_id for f in await again.fetch_fills("hb2", PERP.symbol)}
    await again.close()
    assert len(before) == len(after) == 2 and not before & after
