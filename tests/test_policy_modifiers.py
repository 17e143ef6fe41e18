"""decide with each modifier: debounce, minimum price move, time fallback; and the memory the
hedger keeps for them between decisions."""

from __future__ import annotations

import pytest

from bot.core.book import Exposure
from bot.core.market import UnderlyingMarket
from bot.core.policy import BandPolicy, HedgeDecision, Memory, Modifiers, decide

T0 = 1_700_000_000_000
BAND = BandPolicy(band=1.0)


def exp(delta: float, price: float = 50_000.0) -> Exposure:
    return Exposure("BTC", 0, price, delta, delta * price, 0.0, 0.0, 0.0, 0.0)


def run(
    delta: float,
    now: int,
    m: Modifiers,
    memory: Memory | None,
    *,
    price: float = 50_000.0,
    in_flight: bool = False,
    halted: str | None = None,
    ratio: float = 1.0,
) -> HedgeDecision:
    mkt = UnderlyingMarket("BTC", 0, price, 0.6)
    return decide(
        BAND,
        exp(delta, price),
        mkt,
        now,
        order_in_flight=in_flight,
        halted_reason=halted,
        hedge_ratio=ratio,
        modifiers=m,
        memory=memory,
    )


def test_without_modifiers_a_trade_is_remembered() -> None:
    d = run(1.5, T0, Modifiers(), None, price=51_000.0)
    assert d.trade and d.memory == Memory(None, T0, 51_000.0)
    quiet = run(0.2, T0 + 1, Modifiers(), d.memory)
    assert quiet.memory == Memory(None, T0, 51_000.0)


def test_the_first_decision_starts_the_fallback_clock() -> None:
    d = run(0.5, T0, Modifiers(), None)
    assert not d.trade and d.memory == Memory(None, T0, None)


# ---- debounce ---------------------------------------------------------------------------------


def test_debounce_waits_for_the_drift_to_stay_outside() -> None:
    m = Modifiers(debounce_ms=10_000)
    d = run(1.5, T0, m, Memory())
    assert not d.trade and d.reason == "debounce" and d.memory.outside_since_ms == T0
    d = run(1.6, T0 + 9_999, m, d.memory)
    assert not d.trade and d.reason == "debounce" and d.memory.outside_since_ms == T0
    d = run(1.6, T0 + 10_000, m, d.memory)
    assert d.trade and d.reason == "outside_band" and d.gap_coin == pytest.approx(-1.6)
    assert d.memory == Memory(None, T0 + 10_000, 50_000.0)


def test_debounce_restarts_when_the_drift_comes_back_inside() -> None:
    m = Modifiers(debounce_ms=10_000)
    d = run(1.5, T0, m, Memory())
    d = run(0.5, T0 + 5_000, m, d.memory)
    assert d.reason == "inside_band" and d.memory.outside_since_ms is None
    d = run(1.5, T0 + 12_000, m, d.memory)  # outside again: a new wait from here
    assert not d.trade and d.reason == "debounce" and d.memory.outside_since_ms == T0 + 12_000


def test_halt_and_in_flight_leave_the_memory_alone() -> None:
    m = Modifiers(debounce_ms=10_000)
    mem = Memory(T0, T0 - 5_000, 50_000.0)
    assert run(1.5, T0 + 20_000, m, mem, in_flight=True).memory == mem
    assert run(1.5, T0 + 20_000, m, mem, halted="paused").memory == mem


# ---- minimum price move ------------------------------------------------------------------------


def test_min_move_ignores_drift_without_a_price_move() -> None:
    m = Modifiers(min_move=0.002)  # 0.2 %
    mem = Memory(None, T0, 50_000.0)
    # IV or time moved the delta, the price only 0.1 %: wait
    d = run(1.5, T0 + 60_000, m, mem, price=50_050.0)
    assert not d.trade and d.reason == "min_move" and d.memory.outside_since_ms == T0 + 60_000
    # down 0.2 %: act
    d = run(1.5, T0 + 120_000, m, d.memory, price=49_900.0)
    assert d.trade and d.reason == "outside_band"


def test_min_move_with_no_trade_yet_does_not_wait() -> None:
    d = run(1.5, T0, Modifiers(min_move=0.002), None)
    assert d.trade


def test_min_move_then_debounce() -> None:
    m = Modifiers(min_move=0.002, debounce_ms=30_000)
    mem = Memory(None, T0, 50_000.0)
    d = run(1.5, T0, m, mem, price=50_010.0)
    assert d.reason == "min_move"
    d = run(1.5, T0 + 10_000, m, d.memory, price=50_200.0)  # moved, but outside only 10 s
    assert d.reason == "debounce"
    d = run(1.5, T0 + 30_000, m, d.memory, price=50_200.0)
    assert d.trade


# ---- time fallback -----------------------------------------------------------------------------


def test_time_fallback_trades_to_target_beyond_the_inner_band() -> None:
    m = Modifiers(time_fallback_ms=3_600_000, inner=0.25)  # 1 h; inner band 0.25 x 1.0
    mem = Memory(None, T0, 50_000.0)
    d = run(0.3, T0 + 3_599_999, m, mem)
    assert not d.trade and d.reason == "inside_band"
    d = run(0.3, T0 + 3_600_000, m, mem)
    assert d.trade and d.reason == "time_fallback" and d.gap_coin == pytest.approx(-0.3)
    assert d.memory.last_trade_ms == T0 + 3_600_000
    half = run(-0.3, T0 + 3_600_000, m, mem, ratio=0.5)
    assert half.trade and half.gap_coin == pytest.approx(0.15)


def test_time_fallback_leaves_a_drift_inside_the_inner_band() -> None:
    m = Modifiers(time_fallback_ms=3_600_000, inner=0.25)
    d = run(0.25, T0 + 7_200_000, m, Memory(None, T0, 50_000.0))  # on the inner edge
    assert not d.trade and d.reason == "inside_band"


def test_inner_must_be_a_share_of_the_band() -> None:
    for bad in (0.0, 1.0):
        with pytest.raises(ValueError, match="inner must be in"):
            Modifiers(inner=bad)
