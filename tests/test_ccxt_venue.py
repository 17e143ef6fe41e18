"""CcxtVenue against the local emulator: the real ccxt.pro deribit and binanceusdm classes,
pointed at 127.0.0.1 through AccountConfig.urls, in testnet mode (sandbox / demo trading)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from pydantic import SecretStr

from bot.config_accounts import AccountConfig
from bot.core.instruments import Kind, Settlement
from bot.core.orders import OrderRequest, OrderStatus, Side
from bot.venues.base import VenueAmbiguous, VenueNotSupported, VenueRejected, VenueTransient
from bot.venues.ccxt_venue import CcxtVenue
from tests.emulator import BinanceEmulator, DeribitEmulator, ExchangeState
from tests.emulator.deribit import default_markets, linear_perp_market
from tests.emulator.server import BaseEmulator

WAIT = 5.0


@dataclass
class Env:
    emu: Any  # DeribitEmulator | BinanceEmulator
    venue: CcxtVenue
    symbol: str  # ccxt symbol
    venue_id: str  # emulator instrument id
    size: float  # a valid order amount
    bid: float
    ask: float


def _config(emu: BaseEmulator, exchange: str, **over: Any) -> AccountConfig:
    base: dict[str, Any] = dict(
        exchange=exchange,
        mode="testnet",
        api_key=SecretStr("emulator-key"),
        secret=SecretStr("emulator-secret"),
        urls=emu.config_urls(),  # type: ignore[attr-defined]
        request_timeout_s=1.0,
        retry_base_s=0.01,
        retry_max_s=0.05,
    )
    base.update(over)
    return AccountConfig(**base)


@pytest.fixture(params=["deribit", "binanceusdm"])
async def env(request: pytest.FixtureRequest) -> AsyncIterator[Env]:
    if request.param == "deribit":
        emu: Any = await DeribitEmulator().start()
        e = Env(emu, None, "BTC/USD:BTC", "BTC-PERPETUAL", 20.0, 59990.0, 60010.0)  # type: ignore[arg-type]
        emu.state.set_book(
            e.venue_id,
            [(59990.0, 1000.0), (59980.0, 5000.0)],
            [(60010.0, 1000.0), (60020.0, 5000.0)],
        )
    else:
        emu = await BinanceEmulator().start()
        e = Env(emu, None, "BTC/USDT:USDT", "BTCUSDT", 0.01, 59990.0, 60010.0)  # type: ignore[arg-type]
        emu.state.set_book(
            e.venue_id, [(59990.0, 1.0), (59980.0, 5.0)], [(60010.0, 1.0), (60020.0, 5.0)]
        )
    e.venue = CcxtVenue("acct", _config(emu, request.param))
    await e.venue.connect()
    try:
        yield e
    finally:
        await e.venue.close()
        await emu.stop()


async def test_instruments_ticker_and_book(env: Env) -> None:
    instruments = await env.venue.load_instruments()
    assert instruments[env.symbol].kind is Kind.PERP
    ticker = await env.venue.fetch_ticker(env.symbol)
    assert (ticker.bid, ticker.ask) == (env.bid, env.ask)
    streamed = await asyncio.wait_for(env.venue.watch_ticker(env.symbol), WAIT)
    assert (streamed.bid, streamed.ask) == (env.bid, env.ask)
    book = await env.venue.fetch_order_book(env.symbol)
    assert book.best_bid == env.bid and book.best_ask == env.ask
    live = await asyncio.wait_for(env.venue.watch_order_book(env.symbol), WAIT)
    assert live.best_bid == env.bid and live.best_ask == env.ask and len(live.asks) == 2
    # The stream follows the emulator's book, and our snapshot is a copy, not ccxt's cache.
    env.emu.state.set_book(env.venue_id, [(59995.0, 3 * env.size)], [(60005.0, 3 * env.size)])
    for _ in range(40):
        newer = await asyncio.wait_for(env.venue.watch_order_book(env.symbol), WAIT)
        if newer.best_bid == 59995.0:
            break
    assert newer.best_bid == 59995.0 and newer.best_ask == 60005.0 and len(newer.bids) == 1
    assert live.best_bid == env.bid  # untouched


async def test_funding_rate_read_through_ccxt(env: Env) -> None:
    """Routing's funding rates: ccxt fetch_funding_rate on the real exchange class (Deribit's
    get_funding_rate_value, Binance's premiumIndex), per 8 hours."""
    env.emu.state.markets[env.venue_id].funding_8h = -0.00025
    rate = await env.venue.fetch_funding_rate(env.symbol)
    assert rate.rate == pytest.approx(-0.00025)
    assert rate.interval_h == 8.0
    assert rate.problem() is None


async def test_orders_positions_balances_and_fills(env: Env) -> None:
    v = env.venue
    assert await v.fetch_balances()
    fills_task = asyncio.ensure_future(v.watch_fills())
    orders_task = asyncio.ensure_future(v.watch_orders())
    await asyncio.sleep(0.3)  # subscribed before the order goes in
    taken = await v.create_order(OrderRequest("hb-1", env.symbol, Side.BUY, env.size, env.ask))
    assert taken.client_id == "hb-1" and taken.status is OrderStatus.FILLED
    assert taken.filled == env.size and taken.average == env.ask
    fills = await asyncio.wait_for(fills_task, WAIT)
    assert [(f.client_id, f.amount, f.price) for f in fills] == [("hb-1", env.size, env.ask)]
    streamed = await asyncio.wait_for(orders_task, WAIT)
    assert streamed and all(u.client_id == "hb-1" for u in streamed)

    positions = {p.symbol: p.qty for p in await v.fetch_positions()}
    assert positions == {env.symbol: env.size}

    found = await v.fetch_order("hb-1", env.symbol)
    assert found is not None and found.status is OrderStatus.FILLED
    assert await v.fetch_order("never-sent", env.symbol) is None
    assert [f.amount for f in await v.fetch_fills("hb-1", env.symbol)] == [env.size]

    # A resting sell, reduce-only, then cancelled by client id.
    resting = await v.create_order(
        OrderRequest("hb-2", env.symbol, Side.SELL, env.size, 61000.0, reduce_only=True)
    )
    assert resting.status is OrderStatus.OPEN
    assert [o.client_id for o in await v.fetch_open_orders()] == ["hb-2"]
    cancelled = await v.cancel_order("hb-2", env.symbol)
    assert cancelled is not None and cancelled.status is OrderStatus.CANCELLED
    assert await v.fetch_open_orders() == []
    assert await v.cancel_order("never-sent", env.symbol) is None


async def test_websocket_dropped_mid_stream_next_watch_reconnects(env: Env) -> None:
    await asyncio.wait_for(env.venue.watch_ticker(env.symbol), WAIT)
    pending = asyncio.ensure_future(env.venue.watch_ticker(env.symbol))
    await asyncio.sleep(0)
    assert await env.emu.drop_websockets() >= 1
    # The pending watch is rejected by the drop (or already had its message): watch again.
    with contextlib.suppress(VenueTransient):
        await asyncio.wait_for(pending, WAIT)
    ticker = await asyncio.wait_for(env.venue.watch_ticker(env.symbol), WAIT)
    assert ticker.bid == env.bid
    assert env.emu.connections  # a fresh socket


async def test_429_and_502_on_reads_are_retried(env: Env) -> None:
    env.emu.faults.fail_next(429)
    env.emu.faults.fail_next(502)
    positions = await env.venue.fetch_positions()
    assert positions == [] or all(p.qty == 0 for p in positions)
    assert env.emu.faults.http_errors == []  # both failures were served, then the answer


async def test_reads_give_up_after_bounded_attempts(env: Env) -> None:
    env.emu.faults.fail_next(502, 10)
    with pytest.raises(VenueTransient):
        await env.venue.fetch_balances()
    assert env.emu.faults.http_errors == [502] * 6  # read_attempts=4 consumed four


async def test_create_response_lost_is_ambiguous_and_lookup_finds_one_order(env: Env) -> None:
    env.emu.faults.hang_creates = 1
    before = len(env.emu.state.requests)
    with pytest.raises(VenueAmbiguous):
        await env.venue.create_order(
            OrderRequest("hb-lost", env.symbol, Side.BUY, env.size, env.ask)
        )
    assert len(env.emu.state.requests) - before == 1  # a create is never retried here
    found = await env.venue.fetch_order("hb-lost", env.symbol)
    assert found is not None and found.status is OrderStatus.FILLED
    assert len(env.emu.state.find_by_client_id("hb-lost")) == 1
    assert {p.symbol: p.qty for p in await env.venue.fetch_positions()} == {env.symbol: env.size}


async def test_rejections_are_not_retried(env: Env) -> None:
    before = len(env.emu.state.requests)
    with pytest.raises(VenueRejected):
        await env.venue.create_order(OrderRequest("hb-x", "NOPE/USD:USD", Side.BUY, 1.0, 1.0))
    with pytest.raises(VenueRejected):  # below the lot: truncates to 0 -> InvalidOrder
        await env.venue.create_order(
            OrderRequest("hb-y", env.symbol, Side.BUY, env.size / 1000, env.ask)
        )
    with pytest.raises(VenueRejected):  # BadSymbol on a read is not retried either
        await env.venue.fetch_ticker("NOPE/USD:USD")
    assert len(env.emu.state.requests) == before  # all refused before any traffic


async def test_silent_stream_times_out_then_recovers(env: Env) -> None:
    await asyncio.wait_for(env.venue.watch_ticker(env.symbol), WAIT)
    env.emu.faults.mute_streams = True
    await asyncio.sleep(0.1)
    with pytest.raises(asyncio.TimeoutError):
        await asyncio.wait_for(env.venue.watch_ticker(env.symbol), 0.5)
    env.emu.faults.mute_streams = False
    assert (await asyncio.wait_for(env.venue.watch_ticker(env.symbol), WAIT)).ask == env.ask


async def test_paper_mode_reads_public_data_and_refuses_orders() -> None:
    emu = await DeribitEmulator().start()
    emu.state.set_book("BTC-PERPETUAL", [(59990.0, 100.0)], [(60010.0, 100.0)])
    venue = CcxtVenue("paper", _config(emu, "deribit", mode="paper", api_key=None, secret=None))
    try:
        await venue.connect()
        assert (await venue.fetch_ticker("BTC/USD:BTC")).bid == 59990.0
        assert venue.exchange.apiKey in (None, "")
        with pytest.raises(VenueNotSupported):
            await venue.create_order(OrderRequest("p-1", "BTC/USD:BTC", Side.BUY, 10, 60010.0))
        with pytest.raises(VenueNotSupported):
            await venue.cancel_order("p-1", "BTC/USD:BTC")
    finally:
        await venue.close()
        await emu.stop()


async def test_deribit_specifics_label_greeks_and_no_position_stream() -> None:
    emu = await DeribitEmulator().start()
    venue = CcxtVenue("d", _config(emu, "deribit"))
    try:
        await venue.connect()
        assert venue.exchange.urls["api"]["rest"] == emu.base_url  # override beat sandbox URL
        option = "BTC/USD:BTC-300101-60000-C"
        ticker = await venue.fetch_ticker(option)
        assert ticker.iv == pytest.approx(0.6127)  # 61.27 percent on the wire
        assert ticker.venue_delta == pytest.approx(0.62 - 0.2)  # premium-adjusted, coin
        with pytest.raises(VenueNotSupported):
            await venue.watch_positions()
        emu.state.set_book("BTC-PERPETUAL", [(59990.0, 100.0)], [(60010.0, 100.0)])
        await venue.create_order(OrderRequest("lbl-1", "BTC/USD:BTC", Side.BUY, 10, 60010.0))
        assert emu.state.find_by_client_id("lbl-1")[0].client_id == "lbl-1"  # sent as label
    finally:
        await venue.close()
        await emu.stop()


async def test_binance_position_stream_lie_and_rest_truth() -> None:
    emu = await BinanceEmulator().start()
    emu.state.set_book("BTCUSDT", [(59990.0, 1.0)], [(60010.0, 1.0)])
    venue = CcxtVenue("b", _config(emu, "binanceusdm"))
    symbol = "BTC/USDT:USDT"
    try:
        await venue.connect()
        assert venue.exchange.options.get("enableDemoTrading") is True  # demo, not sandbox
        await asyncio.wait_for(venue.watch_positions(), WAIT)  # snapshot + subscription
        emu.faults.stream_position["BTCUSDT"] = 0.0
        # ccxt delivers position updates to a waiting watcher: wait first, then trade.
        watching = asyncio.ensure_future(venue.watch_positions())
        await asyncio.sleep(0.2)
        await venue.create_order(OrderRequest("b-1", symbol, Side.BUY, 0.02, 60010.0))
        streamed = {p.symbol: p.qty for p in await asyncio.wait_for(watching, WAIT)}
        assert streamed[symbol] == 0.0  # the stream lies ...
        rest = {p.symbol: p.qty for p in await venue.fetch_positions()}
        assert rest[symbol] == 0.02  # ... REST has the truth
        with pytest.raises(VenueRejected):  # a resent client id is refused by the venue
            await venue.create_order(OrderRequest("b-1", symbol, Side.BUY, 0.02, 59000.0))
    finally:
        await venue.close()
        await emu.stop()


async def test_deribit_linear_perp_order_arrives_in_btc_and_reads_back_in_contracts() -> None:
    # Deribit takes linear amounts in BTC; the book counts contracts of 0.001 BTC.
    state = ExchangeState(
        [*default_markets(), linear_perp_market()], {"BTC": 1.0, "USDT": 100_000.0}
    )
    emu = await DeribitEmulator(state).start()
    emu.state.set_book("BTC_USDT-PERPETUAL", [(59990.0, 0.5)], [(60010.0, 0.5)])
    symbol = "BTC/USDT:USDT"
    venue = CcxtVenue("d", _config(emu, "deribit"), required={symbol, "BTC/USD:BTC"})
    try:
        await venue.connect()  # the required markets pass the plausibility rules
        instrument = (await venue.load_instruments())[symbol]
        assert instrument.settlement is Settlement.LINEAR
        assert (instrument.contract_size, instrument.amount_step) == (0.001, 1.0)
        book = await venue.fetch_order_book(symbol)
        assert book.asks[0].amount == 500.0  # 0.5 BTC on the wire = 500 contracts
        fills_task = asyncio.ensure_future(venue.watch_fills())
        await asyncio.sleep(0.3)
        taken = await venue.create_order(OrderRequest("lin-1", symbol, Side.BUY, 7.0, 60010.0))
        [sent] = emu.state.find_by_client_id("lin-1")
        assert sent.amount == pytest.approx(0.007)  # N x 0.001 BTC, not N BTC
        assert (taken.amount, taken.filled, taken.status) == (7.0, 7.0, OrderStatus.FILLED)
        fills = await asyncio.wait_for(fills_task, WAIT)
        assert [(f.client_id, f.amount) for f in fills] == [("lin-1", 7.0)]
        assert {p.symbol: p.qty for p in await venue.fetch_positions()} == {symbol: 7.0}
        found = await venue.fetch_order("lin-1", symbol)
        assert found is not None and (found.amount, found.filled) == (7.0, 7.0)
        assert [f.amount for f in await venue.fetch_fills("lin-1", symbol)] == [7.0]
    finally:
        await venue.close()
        await emu.stop()
