"""Books and option marks on demand: built only when asked for after the price moved, vectorized,
and equal to what the level-by-level and one-option-at-a-time code computed."""

from __future__ import annotations

import math
import random

import numpy as np
import pytest

from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.greeks import black_scholes, year_fraction
from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import BookLevel, OrderBook
from bot.core.orders import OrderRequest, Side
from bot.venues.sim import book as bk
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.market import MarketState, Stepper, UnderlyingParams, step
from bot.venues.sim.pricing import OptionColumns, option_marks

T0 = 1_767_225_600_000
PERP = "BTC/USDT:USDT"


def reference_book(
    inst: Instrument, fair: float, index: float, ts_ms: int, p: bk.BookParams
) -> OrderBook:
    """The book as the module docstring of book.py defines it, level by level."""
    tick = inst.price_step
    dec = bk.tick_decimals(tick)
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    for i in range(p.depth_levels):
        off = (p.spread_bps / 2.0 + i * p.level_step_bps) / 1e4
        ask = bk.to_tick(fair * (1.0 + off), tick, up=True)
        bid = bk.to_tick(fair * (1.0 - off), tick, up=False)
        if asks:
            ask = max(ask, round(asks[-1].price + tick, dec))
        if bids:
            bid = min(bid, round(bids[-1].price - tick, dec))
        elif bid >= ask:
            bid = round(ask - tick, dec)
        asks.append(BookLevel(ask, bk.level_amount(inst, ask, index, p.level_notional_usd)))
        if bid > 0.0:
            bids.append(BookLevel(bid, bk.level_amount(inst, bid, index, p.level_notional_usd)))
    return OrderBook(inst.symbol, ts_ms, tuple(bids), tuple(asks))


def random_instrument(rnd: random.Random) -> Instrument:
    kind = rnd.choice([Kind.PERP, Kind.OPTION, Kind.SPOT, Kind.FUTURE])
    inverse = kind is not Kind.SPOT and rnd.random() < 0.4
    option = kind is Kind.OPTION
    return Instrument(
        "X",
        "BTC",
        kind,
        Settlement.INVERSE if inverse else Settlement.LINEAR,
        rnd.choice([1.0, 10.0, 100.0]) if inverse else 1.0,
        expiry_ms=1 if option or kind is Kind.FUTURE else None,
        strike=1.0 if option else None,
        option_type=OptionType.CALL if option else None,
        amount_step=rnd.choice([1e-4, 1e-3, 0.01, 0.1, 1.0, 10.0, 0.5]),
        price_step=rnd.choice([1e-5, 1e-4, 0.001, 0.01, 0.1, 1.0, 10.0, 0.25, 0.5]),
    )


def test_vectorized_books_equal_the_level_by_level_definition() -> None:
    rnd = random.Random(7)
    for _ in range(3000):
        inst = random_instrument(rnd)
        fair = 10.0 ** rnd.uniform(-4.0, 5.5)
        index = 10.0 ** rnd.uniform(-1.0, 5.5)
        params = bk.BookParams(
            spread_bps=rnd.choice([0.0, 0.5, 2.0, 50.0, 333.3]),
            depth_levels=rnd.randint(1, 25),
            level_step_bps=rnd.choice([0.1, 1.0, 2.5, 100.0]),
            level_notional_usd=10.0 ** rnd.uniform(0.0, 7.0),
        )
        want = reference_book(inst, fair, index, 5, params)
        got = bk.make_book(inst, fair, index, 5, params)
        assert got == want, (inst, fair, index, params)
        assert bk.top_of_book(inst, fair, params) == (want.best_bid, want.best_ask)


@pytest.mark.parametrize("names", [("BTC",), ("SOL", "BTC", "ETH")])
def test_stepper_draws_the_same_path_as_step(names: tuple[str, ...]) -> None:
    params = {
        "BTC": UnderlyingParams(vol=0.6, jump_intensity=2_000.0, jump_mean=-0.01, jump_std=0.03),
        "ETH": UnderlyingParams(vol=0.8),
        "SOL": UnderlyingParams(vol=1.1, drift=0.3, jump_intensity=40.0, jump_std=0.1),
    }
    start = {"SOL": 150.0, "BTC": 60_000.0, "ETH": 3_000.0}
    state = MarketState(T0, {u: start[u] for u in names})
    stepper = Stepper(params, state.prices)
    prices = [state.prices[u] for u in stepper.names]
    slow, fast = np.random.default_rng(3), np.random.default_rng(3)
    ts = T0
    for i in range(1, 3001):
        to = ts + (i % 5) * 700  # uneven steps, some of no time at all
        state = step(state, params, to, slow)
        prices = stepper.advance(prices, ts, to, fast)
        ts = to
        assert prices == [state.prices[u] for u in stepper.names], i
    assert slow.bit_generator.state == fast.bit_generator.state


def test_option_marks_equal_black_scholes_one_by_one() -> None:
    rng = np.random.default_rng(11)
    names = ["BTC", "ETH"]
    vols = {"BTC": 0.6, "ETH": 0.85}
    options = [
        Instrument(
            f"O{n}",
            names[n % 2],
            Kind.OPTION,
            expiry_ms=T0 + int(rng.integers(-86_400_000, 90 * 86_400_000)),  # some expired
            strike=float(rng.uniform(0.5, 1.5)) * (60_000.0 if n % 2 == 0 else 3_000.0),
            option_type=OptionType.CALL if n % 3 else OptionType.PUT,
        )
        for n in range(400)
    ]
    cols = OptionColumns.of(options, names, vols)
    prices = [61_234.5, 2_987.25]
    now = T0 + 3_600_000
    price, delta = option_marks(cols, prices, now)
    for n, o in enumerate(options):
        assert o.strike is not None and o.expiry_ms is not None
        s = prices[names.index(o.underlying)]
        g = black_scholes(
            s,
            o.strike,
            year_fraction(o.expiry_ms, now),
            0.0,
            vols[o.underlying],
            o.option_type is OptionType.CALL,
        )
        assert float(price[n]) == float(g.price), o
        assert float(delta[n]) == float(g.delta), o


def straddle_exchange() -> SimExchange:
    cfg = SimConfig(seed=3, underlyings={"BTC": SimUnderlying(price=60_000.0)})
    positions = [
        PositionConfig(
            underlying="BTC", kind="option", option_type=t, strike=60_000, expiry_days=30, qty=-1
        )
        for t in ("call", "put")
    ]
    return SimExchange.create(cfg, positions, T0)


def test_ticks_build_nothing_until_asked() -> None:
    ex = straddle_exchange()
    built, priced = ex.quotes.books_built, ex.quotes.option_pricings
    for n in range(1, 101):
        ex.tick(T0 + n * 1000)
    assert (ex.quotes.books_built, ex.quotes.option_pricings) == (built, priced)
    # A watcher asks twice in one tick: one build. The next tick: one more.
    first = ex.book(PERP)
    assert ex.book(PERP) is first and ex.quotes.books_built == built + 1
    ex.tick(T0 + 101_000)
    assert ex.book(PERP) != first and ex.quotes.books_built == built + 2
    assert ex.quotes.option_pricings == priced  # nobody asked about an option


def test_one_pricing_serves_every_option_in_a_tick() -> None:
    ex = straddle_exchange()
    ex.tick(T0 + 1000)
    priced = ex.quotes.option_pricings
    calls = [s for s in ex.instruments if s.endswith("-C")]
    puts = [s for s in ex.instruments if s.endswith("-P")]
    call, put = ex.ticker(calls[0]), ex.ticker(puts[0])
    assert ex.quotes.option_pricings == priced + 1
    # Put-call parity with no rate; tickers take the top of book without building a book.
    assert call.mark is not None and put.mark is not None and call.index is not None
    assert call.mark - put.mark == pytest.approx(call.index - 60_000.0, abs=1e-6)
    assert call.bid is not None and call.ask is not None and call.bid < call.mark < call.ask
    assert ex.quotes.books_built == 0
    assert ex.book(calls[0]).best_ask == call.ask  # the book agrees with its ticker


def test_taker_liquidity_stays_taken_until_the_next_tick() -> None:
    ex = straddle_exchange()
    ex.tick(T0 + 1000)
    fresh = ex.book(PERP)
    top = fresh.asks[0]
    req = OrderRequest("t1", PERP, Side.BUY, top.amount, top.price)
    ex.submit(req, T0 + 1000)
    assert ex.book(PERP).asks == fresh.asks[1:]
    assert ex.ticker(PERP).ask == fresh.asks[1].price
    ex.tick(T0 + 2000)
    assert len(ex.book(PERP).asks) == len(fresh.asks)  # replenished


def test_resting_orders_fill_on_books_nobody_watches() -> None:
    ex = straddle_exchange()
    ex.tick(T0 + 1000)
    call = next(s for s in ex.instruments if s.endswith("-C"))
    t = ex.ticker(call)
    assert t.ask is not None
    # Offered a tick above the ask: it rests, and fills as maker once the bid trades through.
    price = round(t.ask + 0.1, 1)
    order, _ = ex.submit(OrderRequest("r1", call, Side.SELL, 0.5, price), T0 + 1000)
    assert order.resting == 0.5 and order.filled == 0.0
    built = ex.quotes.books_built
    fills = []
    for n in range(2, 1000):
        fills = ex.tick(T0 + n * 60_000).fills
        if fills:
            break
    assert [(f.client_id, f.price, f.amount) for f in fills] == [("r1", price, 0.5)]
    assert ex.quotes.books_built > built  # its book was built to match it, unasked


def test_unknown_or_expired_symbols_raise() -> None:
    ex = straddle_exchange()
    with pytest.raises(KeyError):
        ex.book("NOPE/USDT")
    assert "NOPE/USDT" not in ex.books and PERP in ex.books
    assert math.isfinite(ex.fair(PERP).mark)


def test_finished_orders_beyond_the_history_are_forgotten() -> None:
    """The exchange keeps every open order and the newest `sim.order_history` finished ones
    with their fills, so a long backtest's memory stays bounded."""
    cfg = SimConfig(
        seed=3,
        order_history=4,
        partial_fill_rate=0.0,
        underlyings={"BTC": SimUnderlying(price=60_000.0, vol=0.6)},
    )
    ex = SimExchange.create(cfg, [], T0)
    resting = OrderRequest("rest", PERP, Side.BUY, 0.01, 30_000.0)  # far below: stays open
    ex.submit(resting, T0)
    for n in range(30):
        ask = ex.book(PERP).best_ask
        assert ask is not None
        order, _ = ex.submit(OrderRequest(f"c{n}", PERP, Side.BUY, 0.01, ask), T0 + n)
        assert not order.is_open, "a marketable order fills at once"
    finished = [c for c, o in ex.orders.items() if not o.is_open]
    assert len(finished) <= 2 * 4 and "c29" in finished
    assert ex.orders["rest"].is_open  # open orders are never forgotten
    assert "c0" not in ex.orders and "c0" not in ex.fills_by_order
    assert {f.client_id for f in ex.fills} == set(finished)
    assert ex.ledger.qty(PERP) == pytest.approx(0.30)  # the positions keep every fill
