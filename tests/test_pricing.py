"""Pure executor pricing: book walks, the slippage fit, the cost rule, slicing."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.market import BookLevel, OrderBook
from bot.core.orders import Side
from bot.execution import pricing

MID = 100.0


def book(asks: list[tuple[float, float]], bids: list[tuple[float, float]]) -> OrderBook:
    return OrderBook(
        "X",
        0,
        bids=tuple(BookLevel(p, a) for p, a in bids),
        asks=tuple(BookLevel(p, a) for p, a in asks),
    )


# Thin book around mid 100: 1 contract a level, levels 10 bp apart starting 5 bp out.
THIN = book(
    asks=[(100.05, 1.0), (100.15, 1.0), (100.25, 1.0), (100.35, 1.0)],
    bids=[(99.95, 1.0), (99.85, 1.0), (99.75, 1.0), (99.65, 1.0)],
)


def test_walk_averages_the_levels_taken() -> None:
    w = pricing.walk_book(THIN, Side.BUY, 2.5)
    assert w is not None
    assert w.amount == pytest.approx(2.5)
    assert w.avg_price == pytest.approx((100.05 + 100.15 + 0.5 * 100.25) / 2.5)
    assert w.worst_price == 100.25
    assert w.mid == MID
    assert w.slippage_bps == pytest.approx((w.avg_price - MID) / MID * 1e4)
    assert w.depth == 4.0
    assert w.complete


def test_walk_sell_side_slippage_is_positive_when_worse() -> None:
    w = pricing.walk_book(THIN, Side.SELL, 2.0)
    assert w is not None
    assert w.avg_price == pytest.approx(99.90)
    assert w.slippage_bps == pytest.approx(10.0)


def test_walk_beyond_depth_is_incomplete() -> None:
    w = pricing.walk_book(THIN, Side.BUY, 10.0)
    assert w is not None
    assert w.amount == 4.0 and not w.complete


def test_walk_needs_a_mid() -> None:
    one_sided = book(asks=[(100.0, 1.0)], bids=[])
    assert pricing.walk_book(one_sided, Side.BUY, 1.0) is None


def test_fit_keeps_everything_inside_the_cap() -> None:
    w = pricing.fit_slippage(THIN, Side.BUY, 2.0, max_slippage_bps=20.0, step=0.1)
    assert w is not None and w.amount == 2.0  # 10 bp average: fits whole


def test_fit_shrinks_to_what_the_cap_allows() -> None:
    # Taking 4 averages 20 bp; at a 10 bp cap: levels 1+2 average exactly 10 bp -> 2 contracts.
    w = pricing.fit_slippage(THIN, Side.BUY, 4.0, max_slippage_bps=10.0, step=0.1)
    assert w is not None
    assert w.amount == pytest.approx(2.0)
    assert w.slippage_bps <= 10.0 + 1e-9


def test_fit_takes_part_of_a_level() -> None:
    # Cap 12 bp: 2 contracts average 10 bp; x more at 100.25 keep (200.2 + 100.25x)/(2+x)
    # <= 100.12, i.e. x <= (200.24 - 200.2)/0.13 = 0.307 -> 0.3 on a 0.1 step.
    w = pricing.fit_slippage(THIN, Side.BUY, 4.0, max_slippage_bps=12.0, step=0.1)
    assert w is not None
    assert w.amount == pytest.approx(2.3)
    assert w.slippage_bps <= 12.0


def test_fit_sell_mirrors_buy() -> None:
    w = pricing.fit_slippage(THIN, Side.SELL, 4.0, max_slippage_bps=12.0, step=0.1)
    assert w is not None
    assert w.amount == pytest.approx(2.3)


def test_fit_is_zero_when_the_touch_is_beyond_the_cap() -> None:
    w = pricing.fit_slippage(THIN, Side.BUY, 1.0, max_slippage_bps=2.0, step=0.1)
    assert w is not None
    assert w.amount == 0.0 and w.avg_price is None


levels = st.lists(st.tuples(st.floats(0.1, 50.0), st.floats(0.01, 5.0)), min_size=1, max_size=8)


@given(levels, st.floats(0.01, 30.0), st.floats(0.5, 100.0))
def test_fit_property_within_cap_and_maximal(
    raw: list[tuple[float, float]], amount: float, cap: float
) -> None:
    # Ask levels increasing from 1 bp over mid, bid mirrored.
    asks, off = [], 1.0
    for step_bp, qty in raw:
        asks.append((MID * (1 + off / 1e4), qty))
        off += step_bp
    bids = [(2 * MID - p, q) for p, q in asks]
    b = book(asks, bids)
    step = 0.01
    w = pricing.fit_slippage(b, Side.BUY, amount, cap, step)
    assert w is not None
    assert w.amount <= amount + 1e-9
    assert w.slippage_bps <= cap + 1e-6
    # One more lot would break the cap, or exceed the request, or the depth.
    more = w.amount + step
    if more <= min(amount, w.depth) - 1e-9:
        bigger = pricing.walk_book(b, Side.BUY, more)
        assert bigger is not None
        assert bigger.slippage_bps > cap - 1e-6


def test_cost_fee_plus_slippage_and_risk() -> None:
    c = pricing.expected_cost(
        notional_usd=60_000.0,
        fee_rate=0.0005,
        slippage_bps=2.0,
        delta_removed_usd=60_000.0,
        sigma_annual=0.6,
        horizon_s=3600.0,
    )
    assert c.fee_usd == pytest.approx(30.0)
    assert c.slippage_usd == pytest.approx(12.0)
    assert c.cost_usd == pytest.approx(42.0)
    assert c.cost_bps == pytest.approx(7.0)
    move = 0.6 * math.sqrt(3600.0 / (365 * 86400))
    assert c.risk_removed_usd == pytest.approx(60_000.0 * move)


def test_price_improvement_is_not_income() -> None:
    c = pricing.expected_cost(1000.0, 0.0, -5.0, 1000.0, 0.6, 3600.0)
    assert c.slippage_usd == 0.0


def test_cost_refusal_rules() -> None:
    c = pricing.expected_cost(10_000.0, 0.0005, 10.0, 10_000.0, 0.6, 3600.0)  # 15 bp
    assert pricing.cost_refusal(c, 30.0, None) is None
    rule, numbers = pricing.cost_refusal(c, 10.0, None) or ("", {})
    assert rule == "max_cost_bps" and numbers["cost_bps"] == pytest.approx(15.0)
    # risk removed: 10k x 0.6 x sqrt(1h) = 64 USD; cost 15 USD -> fine at ratio 1, not at 0.1
    assert pricing.cost_refusal(c, None, 1.0) is None
    rule, numbers = pricing.cost_refusal(c, None, 0.1) or ("", {})
    assert rule == "cost_vs_risk"
    assert numbers["cost_usd"] == pytest.approx(15.0)
    assert numbers["risk_removed_usd"] == pytest.approx(c.risk_removed_usd)


def test_twap_slices() -> None:
    assert pricing.twap_slices(1.0, depth=10.0, fraction=0.25, max_slices=10, step=0.1) == 1
    assert pricing.twap_slices(10.0, depth=10.0, fraction=0.25, max_slices=10, step=0.1) == 4
    assert pricing.twap_slices(100.0, depth=10.0, fraction=0.25, max_slices=10, step=0.1) == 10
    # never more slices than lots
    assert pricing.twap_slices(0.3, depth=0.1, fraction=0.25, max_slices=10, step=0.1) == 3


def test_touch_price() -> None:
    assert pricing.touch_price(THIN, Side.BUY) == 99.95
    assert pricing.touch_price(THIN, Side.SELL) == 100.05
