"""Books around the fair price, matching against them, and fees (pure)."""

from __future__ import annotations

import pytest

from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import BookLevel, OrderBook
from bot.core.orders import Side
from bot.venues.sim.book import BookParams, fee, make_book, match, would_cross

LIN = Instrument("BTC/USDT:USDT", "BTC", Kind.PERP, amount_step=0.001, price_step=0.1)
INV = Instrument(
    "BTC/USD:BTC", "BTC", Kind.PERP, Settlement.INVERSE, 10.0, amount_step=1.0, price_step=0.1
)
OPT = Instrument(
    "BTC/USD:BTC-260131-60000-C",
    "BTC",
    Kind.OPTION,
    Settlement.INVERSE,
    1.0,
    expiry_ms=1,
    strike=60_000.0,
    option_type=OptionType.CALL,
    amount_step=0.01,
    price_step=0.0001,
)
P = BookParams(spread_bps=2.0, depth_levels=20, level_step_bps=1.0, level_notional_usd=250_000.0)


def test_book_shape() -> None:
    b = make_book(LIN, 60_000.0, 60_000.0, 5, P)
    assert b.ts_ms == 5 and len(b.bids) == len(b.asks) == 20
    assert b.best_ask is not None and b.best_bid is not None
    assert b.best_ask == pytest.approx(60_006.0) and b.best_bid == pytest.approx(59_994.0)
    spread_bps = (b.best_ask - b.best_bid) / 60_000.0 * 1e4
    assert spread_bps == pytest.approx(2.0, abs=0.05)
    asks = [x.price for x in b.asks]
    bids = [x.price for x in b.bids]
    assert asks == sorted(asks) and len(set(asks)) == 20
    assert bids == sorted(bids, reverse=True) and len(set(bids)) == 20
    # Levels are level_step_bps apart: the 20th ask is 1 (half spread) + 19 bp above fair.
    assert asks[-1] == pytest.approx(60_000.0 * (1 + 20e-4), abs=0.1)
    assert bids[-1] == pytest.approx(60_000.0 * (1 - 20e-4), abs=0.1)
    for lvl in (*b.bids, *b.asks):
        # 250k USD of notional each, in whole lot steps
        assert lvl.amount * lvl.price == pytest.approx(250_000.0, rel=0.001)
        assert round(lvl.amount / 0.001, 6).is_integer()
        assert lvl.price == round(lvl.price, 1)


def test_inverse_levels_are_usd_contracts() -> None:
    b = make_book(INV, 60_000.0, 60_000.0, 0, P)
    assert all(lvl.amount == 25_000.0 for lvl in (*b.bids, *b.asks))


def test_tiny_levels_hold_at_least_one_step() -> None:
    b = make_book(LIN, 60_000.0, 60_000.0, 0, BookParams(2.0, 3, 1.0, 1.0))
    assert all(lvl.amount == 0.001 for lvl in (*b.bids, *b.asks))


def test_levels_stay_a_tick_apart_when_steps_are_below_the_tick() -> None:
    b = make_book(OPT, 0.05, 60_000.0, 0, BookParams(50.0, 5, 1.0, 250_000.0))
    assert [x.price for x in b.asks] == [0.0502, 0.0503, 0.0504, 0.0505, 0.0506]
    assert [x.price for x in b.bids] == [0.0498, 0.0497, 0.0496, 0.0495, 0.0494]
    # options: notional of the underlying (250k / 60k = 4.16 coin)
    assert b.asks[0].amount == pytest.approx(4.16)


def test_zero_spread_still_leaves_a_tick() -> None:
    b = make_book(LIN, 60_000.0, 60_000.0, 0, BookParams(0.0, 2, 1.0, 1e5))
    assert b.best_bid is not None and b.best_ask is not None
    assert b.best_ask - b.best_bid >= 0.1 - 1e-9


def test_cheap_options_have_no_bids_at_or_below_zero() -> None:
    b = make_book(OPT, 0.0001, 60_000.0, 0, BookParams(50.0, 5, 1.0, 1e5))
    assert all(lvl.price > 0 for lvl in b.bids)
    assert len(b.asks) == 5


BOOK = OrderBook(
    "X",
    0,
    bids=(BookLevel(99.0, 1.0), BookLevel(98.0, 2.0), BookLevel(97.0, 3.0)),
    asks=(BookLevel(101.0, 1.0), BookLevel(102.0, 2.0), BookLevel(103.0, 3.0)),
)


def test_match_walks_the_book() -> None:
    m = match(BOOK, Side.BUY, 2.5, 103.0, 0.5)
    assert m.fills == (BookLevel(101.0, 1.0), BookLevel(102.0, 1.5))
    assert m.filled == 2.5
    assert m.book.asks == (BookLevel(102.0, 0.5), BookLevel(103.0, 3.0))
    assert m.book.bids == BOOK.bids


def test_match_respects_the_limit() -> None:
    m = match(BOOK, Side.BUY, 10.0, 102.0, 0.5)
    assert m.fills == (BookLevel(101.0, 1.0), BookLevel(102.0, 2.0))
    assert m.book.asks == (BookLevel(103.0, 3.0),)
    s = match(BOOK, Side.SELL, 10.0, 98.5, 0.5)
    assert s.fills == (BookLevel(99.0, 1.0),)
    assert s.book.bids == BOOK.bids[1:]


def test_match_nothing_crosses() -> None:
    m = match(BOOK, Side.BUY, 1.0, 100.0, 0.5)
    assert m.fills == () and m.filled == 0.0 and m.book == BOOK


def test_match_exhausts_the_book() -> None:
    m = match(BOOK, Side.SELL, 100.0, 1.0, 1.0)
    assert m.filled == 6.0 and m.book.bids == ()


def test_would_cross() -> None:
    assert would_cross(BOOK, Side.BUY, 101.0)
    assert not would_cross(BOOK, Side.BUY, 100.9)
    assert would_cross(BOOK, Side.SELL, 99.0)
    assert not would_cross(BOOK, Side.SELL, 99.1)
    assert not would_cross(OrderBook("X", 0, (), ()), Side.BUY, 1e9)


def test_fees_by_settlement() -> None:
    # linear: quote currency on traded value
    assert fee(LIN, 2.0, 60_000.0, 60_000.0, 0.0005) == pytest.approx(60.0)
    # inverse: coin, on the contracts' USD value at the trade price
    assert fee(INV, 100.0, 50_000.0, 50_000.0, 0.0005) == pytest.approx(1_000 * 0.0005 / 50_000)
    # inverse option: coin on the underlying notional, capped at 12.5% of the premium
    assert fee(OPT, 1.0, 0.05, 60_000.0, 0.0003) == pytest.approx(0.0003)
    assert fee(OPT, 1.0, 0.001, 60_000.0, 0.0003) == pytest.approx(0.000125)
    lin_call = Instrument(
        "BTC/USDC:USDC-260131-60000-C",
        "BTC",
        Kind.OPTION,
        expiry_ms=1,
        strike=60_000.0,
        option_type=OptionType.CALL,
    )
    assert fee(lin_call, 2.0, 3_000.0, 60_000.0, 0.0003) == pytest.approx(36.0)


def test_a_linear_book_below_one_tick_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match=r"BTC/USDT:USDT: fair price 1e-12 is below one tick"):
        make_book(LIN, 1e-12, 1e-12, 0, P)
