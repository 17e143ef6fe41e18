"""The simulated exchange's tickers in one batch: every option's top of book at once, and each
ticker the same floats as one option priced and topped on its own."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import Ticker
from bot.core.orders import OrderRequest, Side
from bot.venues.sim import book as bk
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.pricing import fair_value

T0 = 1_767_225_600_000

# Ticks of 1/m that print in the tick's decimals (0.0005), ones that do not (1/3, 0.3), whole
# ticks, and ones far from any of those.
TICKS = [1e-8, 1e-5, 1e-4, 0.0005, 0.001, 0.01, 0.1, 0.25, 0.5, 1.0, 5.0, 10.0, 1 / 3, 0.3, 0.07]


def option(tick: float, inverse: bool) -> Instrument:
    return Instrument(
        "X",
        "BTC",
        Kind.OPTION,
        Settlement.INVERSE if inverse else Settlement.LINEAR,
        expiry_ms=1,
        strike=1.0,
        option_type=OptionType.CALL,
        price_step=tick,
    )


fairs = st.one_of(
    st.floats(0.0, 1e6, allow_nan=False),
    st.floats(-30.0, 16.0).map(lambda e: 10.0**e),  # tiny marks to ones past 2**50 ticks
    st.integers(0, 10**7).map(lambda k: k * 0.0005),  # on a tick, where +-1e-9 decides
)


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.tuples(st.sampled_from(TICKS), st.booleans(), fairs), min_size=1, max_size=60),
    st.sampled_from([0.0, 0.5, 2.0, 50.0, 333.3, 20_000.0]),
)
def test_tops_of_book_equal_top_of_book_one_by_one(
    rows: list[tuple[float, bool, float]], spread_bps: float
) -> None:
    params = bk.BookParams(spread_bps, 5, 1.0, 1_000.0)
    rows = (rows * (bk.FEW // len(rows) + 1))[: max(len(rows), bk.FEW + 1)]  # numpy's way
    insts = [option(tick, inverse) for tick, inverse, _ in rows]
    fair = np.array([f for _, _, f in rows], dtype=np.float64)
    bids, asks = bk.tops_of_book(bk.ticks_of(insts), fair, params)
    want = [bk.top_of_book(i, f, params) for i, (_, _, f) in zip(insts, rows, strict=True)]
    assert list(zip(bids, asks, strict=True)) == want


def chain() -> tuple[SimConfig, list[PositionConfig]]:
    """Linear and inverse calls and puts over two underlyings and a coin worth cents (ticks of
    0.1, 0.01 and 1e-5, and the inverse options' coin tick), deep in and far out of the money."""
    cfg = SimConfig(
        seed=5,
        underlyings={
            "BTC": SimUnderlying(price=60_000.0, vol=0.6),
            "ETH": SimUnderlying(price=3_000.0, vol=0.9),
            "DOGE": SimUnderlying(price=0.12, vol=1.5),
        },
    )
    positions = [
        PositionConfig(
            underlying=u,
            kind="option",
            option_type=kind,
            settlement=settlement,
            strike=round(price * moneyness, 6),
            expiry_days=days,
            qty=-1,
        )
        for u, price in (("BTC", 60_000.0), ("ETH", 3_000.0), ("DOGE", 0.12))
        for kind in ("call", "put")
        for settlement in ("linear", "inverse")
        for moneyness in (0.3, 0.8, 1.0, 1.05, 2.5)
        for days in (0.01, 1.0, 90.0)
    ]
    return cfg, positions


def chain_exchange() -> SimExchange:
    return SimExchange.create(*chain(), T0)


def one_by_one(ex: SimExchange, symbol: str) -> Ticker:
    """A ticker as its definition puts it: Black-Scholes for this option alone, the top of
    its book (the book itself when a taker left one at this tick)."""
    q = ex.quotes
    inst = ex.instruments[symbol]
    index = q.index(inst.underlying)
    fair = fair_value(inst, index, q.vols[inst.underlying], q.ts_ms)
    params = q.option_params if inst.kind is Kind.OPTION else q.params
    bid, ask = bk.top_of_book(inst, fair.mark, params)
    book = q._books.get(symbol)
    if book is not None:
        bid, ask = book.best_bid, book.best_ask
    return Ticker(symbol, q.ts_ms, bid, ask, fair.mark, fair.mark, index, fair.iv, fair.delta)


def test_a_batch_of_tickers_equals_each_ticker_on_its_own() -> None:
    ex = chain_exchange()
    symbols = [s for s in ex.instruments if ex.is_live(s)]
    assert sum(ex.instruments[s].kind is Kind.OPTION for s in symbols) == 180
    for n in range(1, 40):
        ex.tick(T0 + n * 1_800_000)  # the shortest options expire on the way
        live = [s for s in symbols if ex.is_live(s)]
        priced = ex.quotes.option_pricings
        if n == 7:  # a taker takes the best ask of one option: its ticker shows the next one
            sym = next(s for s in live if ex.instruments[s].kind is Kind.OPTION)
            top = ex.book(sym).asks[0]
            ex.submit(OrderRequest("t", sym, Side.BUY, top.amount, top.price), ex.quotes.ts_ms)
            assert ex.book(sym).asks[0].price > top.price
        batch = ex.tickers(live)
        assert batch == [one_by_one(ex, s) for s in live], n
        assert [ex.ticker(s) for s in live] == batch
        assert ex.quotes.option_pricings == priced + 1  # one pricing serves the whole tick
    assert len(live) < len(symbols)  # some expired
