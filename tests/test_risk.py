"""The pre-trade risk gate: every rule with its rule name and numbers, trading states, breaker,
rolling windows, margin."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.config_execution import RiskConfig
from bot.core.orders import Side
from bot.core.risk import (
    DAY_MS,
    HOUR_MS,
    MINUTE_MS,
    OrderCheck,
    RiskLimits,
    RiskState,
    Rule,
    TradingState,
    apply_margin,
    assess_margin,
    check_order,
    initial_state,
    liquidation_distance,
    record_failure,
    record_sent,
    record_success,
    reset_breaker,
    set_trading_state,
)

T0 = 1_700_000_000_000
LOOSE = RiskLimits(max_order_notional_usd=1e12, price_collar_bps=100.0)


def order(
    side: Side = Side.BUY,
    amount: float = 1.0,
    price: float = 100.0,
    mark: float | None = 100.0,
    position: float = 0.0,
    buy: float = 0.0,
    sell: float = 0.0,
    symbol: str = "BTC/USDT:USDT",
) -> OrderCheck:
    return OrderCheck(
        symbol=symbol,
        side=side,
        amount=amount,
        price=price,
        notional_usd=amount * price,
        mark=mark,
        position_before=position,
        in_flight_buy=buy,
        in_flight_sell=sell,
    )


def test_loose_limits_approve() -> None:
    v = check_order(order(), LOOSE, RiskState(), T0)
    assert v.approved and v.rule is None and v.message == "approved"


def test_from_config_maps_every_limit() -> None:
    cfg = RiskConfig(
        max_order_notional_usd=5000,
        max_order_contracts=2,
        max_notional_per_hour_usd=10_000,
        max_notional_per_day_usd=50_000,
        max_orders_per_minute=3,
        max_position_contracts={"BTC/USDT:USDT": 4},
        max_position_contracts_default=10,
        price_collar_bps=50,
        breaker_failures=2,
        breaker_cooldown_s=60,
    )
    lim = RiskLimits.from_config(cfg)
    assert lim.max_order_notional_usd == 5000 and lim.max_order_contracts == 2
    assert lim.max_notional_per_hour_usd == 10_000 and lim.max_notional_per_day_usd == 50_000
    assert lim.max_orders_per_minute == 3 and lim.price_collar_bps == 50
    assert lim.position_limit("BTC/USDT:USDT") == 4 and lim.position_limit("ETH/USDT:USDT") == 10
    assert lim.breaker_failures == 2 and lim.breaker_cooldown_ms == 60_000
    assert RiskLimits.from_config(RiskConfig(breaker_cooldown_s=None)).breaker_cooldown_ms is None


def test_config_rejects_reduce_before_warn() -> None:
    with pytest.raises(ValueError, match="margin_ratio_reduce"):
        RiskConfig(margin_ratio_warn=0.8, margin_ratio_reduce=0.5)
    with pytest.raises(ValueError, match="liquidation_distance_reduce"):
        RiskConfig(liquidation_distance_warn=0.05, liquidation_distance_reduce=0.1)


# --- each rule -------------------------------------------------------------------------------


def test_max_order_notional() -> None:
    lim = replace(LOOSE, max_order_notional_usd=150.0)
    v = check_order(order(amount=2.0), lim, RiskState(), T0)
    assert not v.approved and v.rule is Rule.MAX_ORDER_NOTIONAL
    assert v.detail == {"notional_usd": 200.0, "limit_usd": 150.0}
    assert check_order(order(amount=1.5), lim, RiskState(), T0).approved  # at the limit


def test_max_order_contracts() -> None:
    lim = replace(LOOSE, max_order_contracts=3.0)
    v = check_order(order(amount=3.5), lim, RiskState(), T0)
    assert v.rule is Rule.MAX_ORDER_CONTRACTS and v.detail == {"amount": 3.5, "limit": 3.0}
    assert check_order(order(amount=3.0), lim, RiskState(), T0).approved


@pytest.mark.parametrize(
    ("price", "ok"), [(100.99, True), (101.0, True), (101.02, False), (98.9, False), (99.0, True)]
)
def test_price_collar(price: float, ok: bool) -> None:
    v = check_order(order(price=price), LOOSE, RiskState(), T0)
    assert v.approved is ok
    if not ok:
        assert v.rule is Rule.PRICE_COLLAR
        assert v.detail["mark"] == 100.0 and v.detail["price"] == price
        assert v.detail["collar_bps"] == 100.0
        assert v.detail["distance_bps"] == pytest.approx(abs(price - 100.0) * 100)


@pytest.mark.parametrize("mark", [None, 0.0, float("nan")])
def test_price_collar_without_mark_rejects(mark: float | None) -> None:
    v = check_order(order(mark=mark), LOOSE, RiskState(), T0)
    assert v.rule is Rule.PRICE_COLLAR and v.detail == {"price": 100.0}


def test_max_position_counts_in_flight_worst_case() -> None:
    lim = replace(LOOSE, max_position_contracts={"BTC/USDT:USDT": 10.0})
    # Net in flight is 0, but the buys may fill while the sells do not: 3 + 5 + 3 = 11.
    v = check_order(order(amount=3.0, position=3.0, buy=5.0, sell=5.0), lim, RiskState(), T0)
    assert v.rule is Rule.MAX_POSITION
    assert v.detail == {
        "position_before": 3.0,
        "in_flight": 5.0,
        "amount": 3.0,
        "position_after": 11.0,
        "limit": 10.0,
    }
    assert check_order(order(amount=2.0, position=3.0, buy=5.0), lim, RiskState(), T0).approved
    # Short side too.
    v = check_order(order(side=Side.SELL, amount=4.0, position=-7.0), lim, RiskState(), T0)
    assert v.rule is Rule.MAX_POSITION and v.detail["position_after"] == -11.0
    # Other symbols have no limit unless a default is set.
    assert check_order(order(amount=50.0, symbol="ETH/USDT:USDT"), lim, RiskState(), T0).approved
    lim2 = replace(lim, max_position_contracts_default=20.0)
    v = check_order(order(amount=50.0, symbol="ETH/USDT:USDT"), lim2, RiskState(), T0)
    assert v.rule is Rule.MAX_POSITION and v.detail["limit"] == 20.0


def test_max_position_lets_reducing_orders_through_when_over_limit() -> None:
    lim = replace(LOOSE, max_position_contracts={"BTC/USDT:USDT": 10.0})
    v = check_order(order(side=Side.SELL, amount=2.0, position=15.0), lim, RiskState(), T0)
    assert v.approved


def test_max_position_notional() -> None:
    lim = replace(LOOSE, max_position_notional_usd=1_000.0)
    v = check_order(order(amount=4.0, position=7.0), lim, RiskState(), T0)
    assert v.rule is Rule.MAX_POSITION_NOTIONAL
    assert v.detail == {"position_after": 11.0, "position_after_usd": 1_100.0, "limit_usd": 1_000.0}


def test_max_orders_per_minute_and_window_forgets() -> None:
    lim = replace(LOOSE, max_orders_per_minute=2)
    state = record_sent(record_sent(RiskState(), T0, 100.0), T0 + 1_000, 100.0)
    v = check_order(order(), lim, state, T0 + 2_000)
    assert v.rule is Rule.MAX_ORDERS_PER_MINUTE
    assert v.detail == {"orders_last_minute": 2, "limit": 2}
    # The first order leaves the window exactly one minute after it was sent.
    assert check_order(order(), lim, state, T0 + MINUTE_MS).approved


def test_max_notional_per_hour() -> None:
    lim = replace(LOOSE, max_notional_per_hour_usd=500.0)
    state = record_sent(RiskState(), T0, 450.0)
    v = check_order(order(amount=1.0), lim, state, T0 + 10)
    assert v.rule is Rule.MAX_NOTIONAL_PER_HOUR
    assert v.detail == {"used_usd": 450.0, "notional_usd": 100.0, "limit_usd": 500.0}
    assert check_order(order(amount=0.5), lim, state, T0 + 10).approved
    assert check_order(order(amount=1.0), lim, state, T0 + HOUR_MS).approved


def test_max_notional_per_day() -> None:
    lim = replace(LOOSE, max_notional_per_day_usd=1_000.0, max_notional_per_hour_usd=600.0)
    state = RiskState()
    for k in range(3):  # 3 x 300 spread over 3 hours: each hour is fine, the day is not
        state = record_sent(state, T0 + k * HOUR_MS, 300.0)
    now = T0 + 3 * HOUR_MS
    v = check_order(order(amount=2.0), lim, state, now)
    assert v.rule is Rule.MAX_NOTIONAL_PER_DAY
    assert v.detail == {"used_usd": 900.0, "notional_usd": 200.0, "limit_usd": 1_000.0}
    assert check_order(order(amount=2.0), lim, state, T0 + DAY_MS).approved


def test_record_sent_prunes_history_older_than_a_day() -> None:
    state = record_sent(RiskState(), T0, 1.0)
    state = record_sent(state, T0 + DAY_MS, 2.0)
    assert state.history == ((T0 + DAY_MS, 2.0),)


@pytest.mark.parametrize(
    "bad",
    [
        {"amount": 0.0},
        {"amount": -1.0},
        {"price": 0.0},
        {"amount": float("nan")},
        {"position": float("inf")},
    ],
)
def test_invalid_orders(bad: dict[str, float]) -> None:
    v = check_order(order(**bad), LOOSE, RiskState(), T0)  # type: ignore[arg-type]
    assert v.rule is Rule.INVALID_ORDER


# --- trading states --------------------------------------------------------------------------


def test_halted_rejects_with_reason() -> None:
    state = set_trading_state(RiskState(), TradingState.HALTED, "operator")
    v = check_order(order(side=Side.SELL, position=5.0), LOOSE, state, T0)
    assert v.rule is Rule.HALTED and "operator" in v.message


def test_reducing_only() -> None:
    state = set_trading_state(RiskState(), TradingState.REDUCING_ONLY, "operator")
    ok = check_order(order(side=Side.SELL, amount=2.0, position=5.0), LOOSE, state, T0)
    assert ok.approved
    grow = check_order(order(side=Side.BUY, amount=1.0, position=5.0), LOOSE, state, T0)
    assert grow.rule is Rule.REDUCING_ONLY
    assert grow.detail == {"position_before": 5.0, "worst_position_after": 6.0, "amount": 1.0}
    flip = check_order(order(side=Side.SELL, amount=6.0, position=5.0), LOOSE, state, T0)
    assert flip.rule is Rule.REDUCING_ONLY
    # With sells already in flight, another sell may overshoot through zero.
    over = check_order(order(side=Side.SELL, amount=2.0, position=5.0, sell=4.0), LOOSE, state, T0)
    assert over.rule is Rule.REDUCING_ONLY
    flat = check_order(order(side=Side.SELL, amount=1.0, position=0.0), LOOSE, state, T0)
    assert flat.rule is Rule.REDUCING_ONLY


def test_initial_state_from_config() -> None:
    assert initial_state("halted").trading_state is TradingState.HALTED
    assert initial_state().trading_state is TradingState.ACTIVE


positions = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False)
amounts = st.floats(min_value=1e-6, max_value=1e4, allow_nan=False)
in_flight = st.floats(min_value=0, max_value=1e4, allow_nan=False)
sides = st.sampled_from(list(Side))


@given(sides, amounts, positions, in_flight, in_flight)
def test_halted_rejects_everything(
    side: Side, amount: float, pos: float, buy: float, sell: float
) -> None:
    state = set_trading_state(RiskState(), TradingState.HALTED, "test")
    check = order(side=side, amount=amount, position=pos, buy=buy, sell=sell)
    v = check_order(check, LOOSE, state, T0)
    assert not v.approved and v.rule is Rule.HALTED


@given(sides, amounts, positions, in_flight, in_flight)
def test_reducing_only_never_grows_abs_position(
    side: Side, amount: float, pos: float, buy: float, sell: float
) -> None:
    state = set_trading_state(RiskState(), TradingState.REDUCING_ONLY, "test")
    check = order(side=side, amount=amount, position=pos, buy=buy, sell=sell)
    v = check_order(check, LOOSE, state, T0)
    if v.approved:
        # Whatever subset of same-side in-flight orders fills, |position| does not grow.
        for filled_in_flight in (0.0, check.in_flight_same_side):
            after = pos + side.sign * (filled_in_flight + amount)
            assert abs(after) <= abs(pos) + 1e-6
            # no flip through zero (beyond the gate's rounding tolerance, in contracts)
            assert after * (1 if pos > 0 else -1) >= -1e-6


@given(
    st.lists(st.tuples(st.integers(0, 3 * DAY_MS), st.floats(0, 1e6)), max_size=30),
    st.integers(0, 3 * DAY_MS),
)
def test_rolling_windows_forget_old_orders(sent: list[tuple[int, float]], gap: int) -> None:
    lim = replace(
        LOOSE, max_notional_per_day_usd=1.0, max_orders_per_minute=1, max_notional_per_hour_usd=1.0
    )
    state = RiskState()
    for ts, notional in sorted(sent):
        state = record_sent(state, T0 + ts, notional)
    last = max((ts for ts, _ in sent), default=0)
    # A day after the last order, nothing sent before counts any more.
    v = check_order(order(amount=0.001, price=100.0), lim, state, T0 + last + DAY_MS + gap)
    assert v.approved, v


# --- circuit breaker ---------------------------------------------------------------------------


def test_breaker_opens_after_n_failures_and_cools_down() -> None:
    lim = replace(LOOSE, breaker_failures=3, breaker_cooldown_ms=60_000)
    state = RiskState()
    for k in range(2):
        state = record_failure(state, lim, T0 + k)
        assert check_order(order(), lim, state, T0 + k).approved
    state = record_failure(state, lim, T0 + 2)
    v = check_order(order(), lim, state, T0 + 3)
    assert v.rule is Rule.CIRCUIT_BREAKER
    assert v.detail == {"consecutive_failures": 3, "open_until_ms": T0 + 2 + 60_000}
    # Half-open after the cooldown: one order may try; one more failure reopens at once.
    assert check_order(order(), lim, state, T0 + 2 + 60_000).approved
    state = record_failure(state, lim, T0 + 70_000)
    assert check_order(order(), lim, state, T0 + 70_001).rule is Rule.CIRCUIT_BREAKER
    # A success closes it and clears the run.
    state = record_success(state)
    assert state.consecutive_failures == 0 and not state.breaker_open
    assert check_order(order(), lim, state, T0 + 70_002).approved


def test_breaker_without_cooldown_needs_operator() -> None:
    lim = replace(LOOSE, breaker_failures=1, breaker_cooldown_ms=None)
    state = record_failure(RiskState(), lim, T0)
    v = check_order(order(), lim, state, T0 + 10 * DAY_MS)
    assert v.rule is Rule.CIRCUIT_BREAKER and v.detail["open_until_ms"] == -1
    assert check_order(order(), lim, reset_breaker(state), T0 + 10 * DAY_MS).approved


def test_success_between_failures_resets_the_run() -> None:
    lim = replace(LOOSE, breaker_failures=2)
    state = record_failure(RiskState(), lim, T0)
    state = record_success(state)
    state = record_failure(state, lim, T0 + 1)
    assert check_order(order(), lim, state, T0 + 2).approved


def test_verdict_as_dict_for_reject_event() -> None:
    lim = replace(LOOSE, max_order_contracts=1.0)
    d = check_order(order(amount=2.0), lim, RiskState(), T0).as_dict()
    assert d == {
        "approved": False,
        "rule": "max_order_contracts",
        "message": "order contracts above limit",
        "amount": 2.0,
        "limit": 1.0,
    }


# --- margin ----------------------------------------------------------------------------------

MARGIN = replace(
    LOOSE,
    margin_ratio_warn=0.5,
    margin_ratio_reduce=0.75,
    liquidation_distance_warn=0.15,
    liquidation_distance_reduce=0.08,
)


def test_assess_margin_levels() -> None:
    assert assess_margin(MARGIN).level == "ok"  # a venue that reports nothing
    assert assess_margin(MARGIN, margin_ratio=0.3).level == "ok"
    warn = assess_margin(MARGIN, margin_ratio=0.6)
    assert (warn.level, warn.metric, warn.value, warn.threshold) == (
        "warn",
        "margin_ratio",
        0.6,
        0.5,
    )
    red = assess_margin(MARGIN, margin_ratio=0.6, liquidation_distance=0.05)
    assert (red.level, red.metric, red.value, red.threshold) == (
        "reduce",
        "liquidation_distance",
        0.05,
        0.08,
    )
    assert assess_margin(MARGIN, liquidation_distance=0.1).level == "warn"
    assert liquidation_distance(100.0, 90.0) == pytest.approx(0.1)


def test_margin_forces_reducing_only_with_hysteresis() -> None:
    state = RiskState()
    state = apply_margin(state, assess_margin(MARGIN, margin_ratio=0.8))
    assert state.trading_state is TradingState.REDUCING_ONLY and state.state_reason == "margin"
    assert check_order(order(position=1.0), MARGIN, state, T0).rule is Rule.REDUCING_ONLY
    # Back in the warn band: stays reducing-only (no flapping around one threshold).
    state = apply_margin(state, assess_margin(MARGIN, margin_ratio=0.6))
    assert state.trading_state is TradingState.REDUCING_ONLY
    state = apply_margin(state, assess_margin(MARGIN, margin_ratio=0.2))
    assert state.trading_state is TradingState.ACTIVE


def test_margin_never_overrides_operator() -> None:
    halted = set_trading_state(RiskState(), TradingState.HALTED, "operator")
    assert apply_margin(halted, assess_margin(MARGIN, margin_ratio=0.9)) == halted
    ro = set_trading_state(RiskState(), TradingState.REDUCING_ONLY, "operator")
    assert apply_margin(ro, assess_margin(MARGIN, margin_ratio=0.1)) == ro
