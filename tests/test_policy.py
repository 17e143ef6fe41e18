from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.book import Exposure
from bot.core.instruments import Instrument
from bot.core.planner import contracts_for, plan
from bot.core.policy import BandPolicy, decide


def exp(delta_coin: float, price: float = 50_000.0, in_flight: float = 0.0) -> Exposure:
    return Exposure("BTC", 0, price, delta_coin, delta_coin * price, 0.0, 0.0, 0.0, in_flight)


def test_inside_band_does_not_trade() -> None:
    d = decide(BandPolicy(band=0.5), exp(0.4), order_in_flight=False)
    assert not d.trade and d.reason == "inside_band" and d.gap_coin == 0.0


def test_outside_band_trades_back_to_target() -> None:
    d = decide(BandPolicy(band=0.5), exp(1.2), order_in_flight=False)
    assert d.trade and d.reason == "outside_band"
    assert d.gap_coin == pytest.approx(-1.2)


def test_edge_mode_trades_to_the_nearest_band_edge() -> None:
    up = decide(BandPolicy(band=0.5, to="edge"), exp(1.2), order_in_flight=False)
    down = decide(BandPolicy(band=0.5, to="edge"), exp(-2.0), order_in_flight=False)
    assert up.gap_coin == pytest.approx(-0.7)
    assert down.gap_coin == pytest.approx(1.5)


def test_target_bias_and_ratio() -> None:
    pol = BandPolicy(band=0.5, target=1.0, bias=0.5, hedge_ratio=0.5)
    d = decide(pol, exp(3.5), order_in_flight=False)
    assert d.target == 1.5
    assert d.gap_coin == pytest.approx(-1.0)  # half of the way from 3.5 to 1.5


def test_usd_unit_band_converts_gap_to_coin() -> None:
    pol = BandPolicy(band=10_000, unit="usd")
    d = decide(pol, exp(0.5, price=40_000), order_in_flight=False)  # 20k USD > 10k band
    assert d.trade and d.delta == pytest.approx(20_000)
    assert d.gap_coin == pytest.approx(-0.5)


def test_no_new_trigger_while_an_order_is_in_flight() -> None:
    d = decide(BandPolicy(band=0.5), exp(5.0), order_in_flight=True)
    assert not d.trade and d.reason == "order_in_flight"


def test_halt_wins_over_everything() -> None:
    d = decide(BandPolicy(band=0.5), exp(5.0), order_in_flight=False, halted_reason="stale")
    assert not d.trade and d.reason == "stale"


def test_force_trades_inside_band_to_target() -> None:
    d = decide(BandPolicy(band=0.5), exp(0.3), order_in_flight=False, force=True)
    assert d.trade and d.gap_coin == pytest.approx(-0.3)


@given(
    delta=st.floats(-1e3, 1e3),
    band=st.floats(0.01, 100),
    to=st.sampled_from(["target", "edge"]),
)
def test_a_trade_never_overshoots_the_target(delta: float, band: float, to: str) -> None:
    pol = BandPolicy(band=band, to=to)  # type: ignore[arg-type]
    d = decide(pol, exp(delta), order_in_flight=False)
    after = delta + d.gap_coin
    if d.trade:
        assert abs(after) <= band + 1e-9
        assert after * delta >= -1e-9  # same side of target or on it: never flips past it
    else:
        assert abs(delta) <= band


def test_band_must_be_positive() -> None:
    with pytest.raises(ValueError):
        BandPolicy(band=0.0)


# ---- planner -----------------------------------------------------------------------------


def test_plan_rounds_to_lot_toward_zero(linear_perp: Instrument) -> None:
    d = decide(BandPolicy(band=0.5), exp(1.23456), order_in_flight=False)
    p = plan(d, linear_perp, 50_000, "cid1")
    assert p.intent is not None
    assert p.intent.side.value == "sell" and p.intent.amount == pytest.approx(1.234)
    assert p.intent.client_id == "cid1" and p.intent.underlying == "BTC"


def test_plan_inverse_contracts(inverse_perp: Instrument) -> None:
    # 0.5 coin at 40k is 20k USD: 2000 contracts of 10 USD
    assert contracts_for(0.5, inverse_perp, 40_000) == pytest.approx(2000)
    d = decide(BandPolicy(band=0.1), exp(-0.5, price=40_000), order_in_flight=False)
    p = plan(d, inverse_perp, 40_000, "cid")
    assert p.intent is not None and p.intent.side.value == "buy"
    assert p.intent.amount == pytest.approx(2000)


def test_plan_drops_orders_below_minimums(linear_perp: Instrument) -> None:
    pol = BandPolicy(band=0.0001)
    tiny = decide(pol, exp(0.0005), order_in_flight=False)
    assert plan(tiny, linear_perp, 50_000, "c").reason == "below_lot"
    big_min = Instrument("X/USDT:USDT", "BTC", linear_perp.kind, amount_step=0.001, min_amount=0.01)
    small = decide(pol, exp(0.005), order_in_flight=False)
    assert plan(small, big_min, 50_000, "c").reason == "below_min_amount"
    min_cost = Instrument("Y/USDT:USDT", "BTC", linear_perp.kind, amount_step=0.001, min_cost=500.0)
    assert plan(small, min_cost, 50_000, "c").reason == "below_min_cost"


def test_plan_marks_pure_reductions_reduce_only(linear_perp: Instrument) -> None:
    d = decide(BandPolicy(band=0.1), exp(-1.0), order_in_flight=False)  # buy 1
    assert plan(d, linear_perp, 50_000, "c", position=-3.0).intent.reduce_only  # type: ignore[union-attr]
    assert not plan(d, linear_perp, 50_000, "c", position=0.5).intent.reduce_only  # type: ignore[union-attr]
