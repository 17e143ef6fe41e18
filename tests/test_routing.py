"""The routing cost model (bot/core/routing.py): pure, on hand-built books and instruments."""

from __future__ import annotations

from dataclasses import replace

import pytest

from bot.core.instruments import Instrument, Kind, Settlement
from bot.core.market import BookLevel, FundingRate, OrderBook
from bot.core.routing import Candidate, cost_of, route

PRICE = 60_000.0
NOW = 1_800_000_000_000
PERP = "BTC/USDT:USDT"


def perp(taker_fee: float) -> Instrument:
    return Instrument(PERP, "BTC", Kind.PERP, amount_step=0.001, taker_fee=taker_fee)


def book(spread_bps: float, level_coin: float = 100.0, levels: int = 5) -> OrderBook:
    """Levels `level_coin` deep, 1 bp apart, around PRICE."""
    half = PRICE * spread_bps / 2 / 10_000
    step = PRICE / 10_000
    bids = tuple(BookLevel(PRICE - half - i * step, level_coin) for i in range(levels))
    asks = tuple(BookLevel(PRICE + half + i * step, level_coin) for i in range(levels))
    return OrderBook(PERP, NOW, bids, asks)


def cand(
    account: str,
    fee: float,
    spread_bps: float,
    rate: float | None,
    *,
    position: float = 0.0,
    limit: float = 1_000.0,
    fresh: bool = True,
    level_coin: float = 100.0,
) -> Candidate:
    funding = FundingRate(rate, 8.0, NOW) if rate is not None else None
    return Candidate(
        (account, PERP),
        perp(fee),
        book(spread_bps, level_coin),
        position,
        limit,
        funding,
        funding_fresh=fresh and funding is not None,
    )


def test_cost_components_in_bps_and_usd() -> None:
    c = cost_of(cand("a", 0.0004, 2.0, 0.0001), 1.0, PRICE, 8.0, NOW)
    assert c.fee_bps == pytest.approx(4.0)
    assert c.half_spread_bps == pytest.approx(1.0, rel=1e-6)
    assert c.slippage_bps == pytest.approx(0.0, abs=1e-9)  # 1 coin fits the first level
    assert c.funding_bps == pytest.approx(1.0)  # a long pays a positive rate: 1 bp per 8 h
    assert c.total_bps == pytest.approx(6.0, rel=1e-6)
    assert c.cost_usd == pytest.approx(6.0 / 10_000 * PRICE, rel=1e-6)
    assert (c.funding, c.skipped, c.basis_bps) == ("fresh", None, None)


def test_funding_sign_follows_the_side_and_the_horizon() -> None:
    sell = cost_of(cand("a", 0.0, 0.0, 0.0001), -1.0, PRICE, 24.0, NOW)
    assert sell.funding_bps == pytest.approx(-3.0)  # a short receives 3 periods of 1 bp
    neg = cost_of(cand("a", 0.0, 0.0, -0.0002), 1.0, PRICE, 8.0, NOW)
    assert neg.funding_bps == pytest.approx(-2.0)  # a long receives a negative rate


def test_stale_or_missing_funding_counts_as_zero_and_says_so() -> None:
    stale = cost_of(cand("a", 0.0, 0.0, 0.001, fresh=False), 1.0, PRICE, 8.0, NOW)
    assert (stale.funding_bps, stale.funding, stale.funding_rate) == (0.0, "stale", 0.001)
    missing = cost_of(cand("a", 0.0, 0.0, None), 1.0, PRICE, 8.0, NOW)
    assert (missing.funding_bps, missing.funding, missing.funding_rate) == (0.0, "stale", None)


def test_slippage_beyond_the_touch_grows_with_size() -> None:
    small = cost_of(cand("a", 0.0, 2.0, None, level_coin=1.0), 1.0, PRICE, 8.0, NOW)
    big = cost_of(cand("a", 0.0, 2.0, None, level_coin=1.0), 3.0, PRICE, 8.0, NOW)
    assert small.slippage_bps == pytest.approx(0.0, abs=1e-9)
    assert big.slippage_bps == pytest.approx(1.0, rel=1e-3)  # levels 0, 1, 2 bp past the touch


def test_order_goes_to_the_cheapest_whatever_the_listing_order() -> None:
    dear = cand("dear", 0.0005, 4.0, -0.0001)
    cheap = cand("cheap", 0.0003, 2.0, 0.0001)
    r = route(-2.0, PRICE, [dear, cheap], 8.0, NOW)
    assert [(g.key[0], g.coin) for g in r.legs] == [("cheap", -2.0)]
    assert r.unrouted_coin == 0.0
    assert [c.key[0] for c in r.costs] == ["dear", "cheap"]  # every candidate is shown


def test_funding_can_decide() -> None:
    """Same fee and spread: a long goes where the rate is lower, a short where it is higher."""
    lo, hi = cand("lo", 0.0004, 2.0, -0.0001), cand("hi", 0.0004, 2.0, 0.0003)
    assert route(1.0, PRICE, [hi, lo], 8.0, NOW).legs[0].key[0] == "lo"
    assert route(-1.0, PRICE, [lo, hi], 8.0, NOW).legs[0].key[0] == "hi"


def test_an_order_crossing_a_limit_is_split() -> None:
    cheap = cand("cheap", 0.0003, 2.0, None, position=-1.5, limit=2.0)
    dear = cand("dear", 0.0005, 4.0, None)
    r = route(-2.0, PRICE, [cheap, dear], 8.0, NOW)
    assert [(g.key[0], round(g.coin, 9)) for g in r.legs] == [("cheap", -0.5), ("dear", -1.5)]
    # on the other side the cheap one has room up to the opposite limit
    back = route(3.0, PRICE, [cheap, dear], 8.0, NOW)
    assert [(g.key[0], g.coin) for g in back.legs] == [("cheap", 3.0)]


def test_full_candidates_are_skipped_and_what_fits_nowhere_is_unrouted() -> None:
    cheap = cand("cheap", 0.0003, 2.0, None, position=2.0, limit=2.0)
    dear = cand("dear", 0.0005, 4.0, None, position=0.5, limit=1.0)
    r = route(1.0, PRICE, [cheap, dear], 8.0, NOW)
    assert [c.skipped for c in r.costs] == ["at_limit", None]
    assert [(g.key[0], g.coin) for g in r.legs] == [("dear", 0.5)]
    assert r.unrouted_coin == pytest.approx(0.5)
    d = r.as_dict()
    assert d["chosen"] == [{"account": "dear", "symbol": PERP, "coin": 0.5}]
    assert d["candidates"][0]["skipped"] == "at_limit"


def test_no_book_or_stale_quote_is_skipped() -> None:
    no_book = Candidate(("a", PERP), perp(0.0), None, 0.0, 10.0, None, False)
    stale = Candidate(("b", PERP), perp(0.0), book(2.0), 0.0, 10.0, None, False, quote_fresh=False)
    r = route(1.0, PRICE, [no_book, stale], 8.0, NOW)
    assert [c.skipped for c in r.costs] == ["no_book", "stale_market_data"]
    assert r.legs == () and r.unrouted_coin == 1.0


def test_future_basis_is_shown_not_priced() -> None:
    year_ms = 365 * 86_400_000
    fut = Instrument(
        "BTC/USDT:USDT-270101", "BTC", Kind.FUTURE, expiry_ms=NOW + year_ms // 4, amount_step=0.001
    )
    b = book(2.0)
    up = OrderBook(b.symbol, NOW, *(
        tuple(BookLevel(lv.price * 1.01, lv.amount) for lv in side) for side in (b.bids, b.asks)
    ))  # fmt: skip
    c = cost_of(Candidate(("a", fut.symbol), fut, up, 0.0, 10.0, None, False), 1.0, PRICE, 8, NOW)
    assert c.basis_bps == pytest.approx(100.0, rel=1e-6)
    assert c.basis_annual == pytest.approx(0.04, rel=1e-3)
    assert c.funding == "n/a" and c.funding_bps == 0.0
    assert c.total_bps == pytest.approx(c.fee_bps + c.half_spread_bps + c.slippage_bps)


def test_inverse_perp_limits_and_sizes_in_coin() -> None:
    inv = Instrument(
        "BTC/USD:BTC", "BTC", Kind.PERP, Settlement.INVERSE, contract_size=10.0, amount_step=1.0
    )
    b = book(2.0, level_coin=1e6)  # levels in contracts of 10 USD
    c = Candidate(("a", inv.symbol), inv, b, -0.5, 1.0, None, False)
    r = route(-1.0, PRICE, [c], 8.0, NOW)
    assert [g.coin for g in r.legs] == [-0.5]
    assert r.costs[0].half_spread_bps == pytest.approx(1.0, rel=1e-6)


def test_a_blocked_candidate_is_skipped_with_the_callers_reason() -> None:
    cheap = cand("cheap", 0.0003, 2.0, None)
    blocked = replace(cheap, blocked="why")
    r = route(1.0, PRICE, [blocked, cand("dear", 0.0005, 4.0, None)], 8.0, NOW)
    assert [c.skipped for c in r.costs] == ["why", None]
    assert [g.key[0] for g in r.legs] == ["dear"]
