from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.book import Exposure
from bot.core.instruments import Instrument
from bot.core.market import UnderlyingMarket
from bot.core.planner import contracts_for, plan
from bot.core.policy import Aim, Band, BandPolicy, HedgeDecision, TriggerPolicy, decide

NOW = 1_700_000_000_000


def exp(delta_coin: float, price: float = 50_000.0, in_flight: float = 0.0) -> Exposure:
    return Exposure("BTC", 0, price, delta_coin, delta_coin * price, 0.0, 0.0, 0.0, in_flight)


def mkt(price: float = 50_000.0) -> UnderlyingMarket:
    return UnderlyingMarket("BTC", 0, price, 0.6)


def run(
    pol: TriggerPolicy,
    e: Exposure,
    *,
    in_flight: bool = False,
    halted: str | None = None,
    force: bool = False,
    ratio: float = 1.0,
) -> HedgeDecision:
    return decide(
        pol,
        e,
        mkt(e.price),
        NOW,
        order_in_flight=in_flight,
        halted_reason=halted,
        force=force,
        hedge_ratio=ratio,
    )


def test_inside_band_does_not_trade() -> None:
    d = run(BandPolicy(band=0.5), exp(0.4))
    assert not d.trade and d.reason == "inside_band" and d.gap_coin == 0.0


def test_outside_band_trades_back_to_target() -> None:
    d = run(BandPolicy(band=0.5), exp(1.2))
    assert d.trade and d.reason == "outside_band"
    assert d.gap_coin == pytest.approx(-1.2)


def test_on_the_edge_is_inside() -> None:
    assert not run(BandPolicy(band=0.5), exp(0.5)).trade
    assert not run(BandPolicy(band=0.5), exp(-0.5)).trade


def test_edge_mode_trades_to_the_nearest_band_edge() -> None:
    up = run(BandPolicy(band=0.5, to="edge"), exp(1.2))
    down = run(BandPolicy(band=0.5, to="edge"), exp(-2.0))
    assert up.gap_coin == pytest.approx(-0.7)
    assert down.gap_coin == pytest.approx(1.5)


def test_target_bias_and_ratio() -> None:
    pol = BandPolicy(band=0.5, aim=Aim(target=1.0, bias=0.5))
    d = run(pol, exp(3.5), ratio=0.5)
    assert d.target == 1.5
    assert d.gap_coin == pytest.approx(-1.0)  # half of the way from 3.5 to 1.5


def test_hedge_ratio_applies_to_the_edge_too() -> None:
    # 2.0 above target, band 0.5, to edge: the way is 1.5; a quarter of it is 0.375
    d = run(BandPolicy(band=0.5, to="edge"), exp(2.0), ratio=0.25)
    assert d.trade and d.gap_coin == pytest.approx(-0.375)


def test_hedge_ratio_outside_zero_one_is_refused() -> None:
    for bad in (0.0, 1.5, math.nan):
        with pytest.raises(ValueError, match="hedge_ratio"):
            run(BandPolicy(band=0.5), exp(2.0), ratio=bad)


def test_usd_unit_band_converts_gap_to_coin() -> None:
    pol = BandPolicy(band=10_000, aim=Aim(unit="usd"))
    d = run(pol, exp(0.5, price=40_000))  # 20k USD > 10k band
    assert d.trade and d.delta == pytest.approx(20_000) and d.unit == "usd"
    assert d.gap_coin == pytest.approx(-0.5)


def test_no_new_trigger_while_an_order_is_in_flight() -> None:
    d = run(BandPolicy(band=0.5), exp(5.0), in_flight=True)
    assert not d.trade and d.reason == "order_in_flight"


def test_in_flight_wins_over_hedge_now() -> None:
    d = run(BandPolicy(band=0.5), exp(5.0), in_flight=True, force=True)
    assert not d.trade and d.reason == "order_in_flight"


def test_halt_wins_over_everything() -> None:
    d = run(BandPolicy(band=0.5), exp(5.0), halted="stale", force=True)
    assert not d.trade and d.reason == "stale"


def test_force_trades_inside_band_to_target() -> None:
    d = run(BandPolicy(band=0.5), exp(0.3), force=True)
    assert d.trade and d.reason == "hedge_now" and d.gap_coin == pytest.approx(-0.3)


def test_force_ignores_edge_mode_and_ratio() -> None:
    pol = BandPolicy(band=0.5, aim=Aim(target=1.0), to="edge")
    d = run(pol, exp(3.0), force=True, ratio=0.5)
    assert d.trade and d.gap_coin == pytest.approx(-2.0)


def test_force_on_target_does_not_trade() -> None:
    d = run(BandPolicy(band=0.5), exp(0.0), force=True)
    assert not d.trade and d.reason == "hedge_now"


# ---- asymmetric bands (numbers by hand) ---------------------------------------------------


def asym(to: str = "target") -> BandPolicy:
    # centre 1.0 (target 0.5 + bias 0.5); no trade while 0.8 <= delta <= 2.0
    return BandPolicy(band=1.0, aim=Aim(target=0.5, bias=0.5), lower=0.2, upper=1.0, to=to)  # type: ignore[arg-type]


def test_asymmetric_band_edges() -> None:
    assert not run(asym(), exp(0.8)).trade  # 1.0 - 0.2: on the lower edge
    assert not run(asym(), exp(2.0)).trade  # 1.0 + 1.0: on the upper edge
    assert run(asym(), exp(0.79)).trade  # 0.21 below the centre
    assert not run(asym(), exp(1.9)).trade  # 0.9 above the centre: inside


def test_asymmetric_band_to_target() -> None:
    below = run(asym(), exp(0.5))  # 0.5 below centre 1.0, lower side 0.2: buy 0.5
    above = run(asym(), exp(2.5))  # 1.5 above, upper side 1.0: sell 1.5
    assert below.gap_coin == pytest.approx(0.5) and above.gap_coin == pytest.approx(-1.5)


def test_asymmetric_band_to_edge_uses_that_side() -> None:
    below = run(asym("edge"), exp(0.5))  # to 0.8: buy 0.3
    above = run(asym("edge"), exp(2.5))  # to 2.0: sell 0.5
    assert below.gap_coin == pytest.approx(0.3) and above.gap_coin == pytest.approx(-0.5)
    half = run(asym("edge"), exp(0.5), ratio=0.5)  # half of 0.3
    assert half.gap_coin == pytest.approx(0.15)


def test_asymmetric_decision_reports_both_sides() -> None:
    d = run(asym(), exp(0.5))
    assert (d.target, d.band_lower, d.band_upper) == (1.0, 0.2, 1.0)
    assert d.band == 1.0  # the wider side
    out = d.as_dict()
    assert out["policy"] == "band" and out["band_lower"] == 0.2 and out["band_upper"] == 1.0
    assert out["target"] == 1.0 and out["band"] == 1.0 and out["to"] == "target"


def test_a_symmetric_band_reports_its_half_width() -> None:
    d = run(BandPolicy(band=0.5), exp(0.0))
    assert (d.band, d.band_lower, d.band_upper) == (0.5, 0.5, 0.5)


# ---- a policy's band that cannot be used stops trading ------------------------------------


class Fixed:
    """A policy returning a given band (as a computed policy could), to test the shared rule."""

    def __init__(self, band: Band) -> None:
        self.fixed = band

    @property
    def name(self) -> str:
        return "fixed"

    def band_for(self, exp: Exposure, market: UnderlyingMarket, now_ms: int) -> Band:
        return self.fixed


@pytest.mark.parametrize(
    ("band", "problem"),
    [
        (Band(0.0, math.nan, 0.5), "lower is nan"),
        (Band(math.inf, 0.5, 0.5), "center is inf"),
        (Band(0.0, 0.5, 0.0), "upper is 0.0 (must be > 0)"),
    ],
)
def test_a_band_the_policy_could_not_compute_never_trades(band: Band, problem: str) -> None:
    for force in (False, True):
        d = run(Fixed(band), exp(50.0), force=force)
        assert not d.trade and d.gap_coin == 0.0
        assert d.reason == f"bad_band: {problem}" and d.policy == "fixed"


def test_the_policy_sees_exposure_market_and_time() -> None:
    seen: list[tuple[float, float, int]] = []

    class Spy(Fixed):
        def band_for(self, exp: Exposure, market: UnderlyingMarket, now_ms: int) -> Band:
            seen.append((exp.delta_coin, market.index, now_ms))
            return self.fixed

    run(Spy(Band(0.0, 1.0, 1.0)), exp(0.25, price=42_000.0))
    assert seen == [(0.25, 42_000.0, NOW)]


@given(
    delta=st.floats(-1e3, 1e3),
    lower=st.floats(0.01, 100),
    upper=st.floats(0.01, 100),
    center=st.floats(-10, 10),
    ratio=st.floats(0.01, 1.0),
    to=st.sampled_from(["target", "edge"]),
)
def test_a_trade_never_overshoots_the_target(
    delta: float, lower: float, upper: float, center: float, ratio: float, to: str
) -> None:
    pol = BandPolicy(
        band=max(lower, upper), aim=Aim(target=center), lower=lower, upper=upper, to=to
    )  # type: ignore[arg-type]
    d = run(pol, exp(delta), ratio=ratio)
    after = delta + d.gap_coin
    if d.trade:
        assert -lower - 1e-9 <= after - center <= upper + 1e-9 or ratio < 1
        # between where it was and the centre: never flips past the target
        assert (after - center) * (delta - center) >= -1e-9
        assert abs(after - center) < abs(delta - center)
    else:
        assert -lower <= delta - center <= upper


def test_band_must_be_positive_and_finite() -> None:
    for bad in ({"band": 0.0}, {"band": math.inf}, {"band": 1.0, "lower": -0.1}):
        with pytest.raises(ValueError, match="must be finite and > 0"):
            BandPolicy(**bad)  # type: ignore[arg-type]


# ---- planner -----------------------------------------------------------------------------


def test_plan_rounds_to_lot_toward_zero(linear_perp: Instrument) -> None:
    d = run(BandPolicy(band=0.5), exp(1.23456))
    p = plan(d, linear_perp, 50_000, "cid1")
    assert p.intent is not None
    assert p.intent.side.value == "sell" and p.intent.amount == pytest.approx(1.234)
    assert p.intent.client_id == "cid1" and p.intent.underlying == "BTC"


def test_plan_inverse_contracts(inverse_perp: Instrument) -> None:
    # 0.5 coin at 40k is 20k USD: 2000 contracts of 10 USD
    assert contracts_for(0.5, inverse_perp, 40_000) == pytest.approx(2000)
    d = run(BandPolicy(band=0.1), exp(-0.5, price=40_000))
    p = plan(d, inverse_perp, 40_000, "cid")
    assert p.intent is not None and p.intent.side.value == "buy"
    assert p.intent.amount == pytest.approx(2000)


def test_plan_drops_orders_below_minimums(linear_perp: Instrument) -> None:
    pol = BandPolicy(band=0.0001)
    tiny = run(pol, exp(0.0005))
    assert plan(tiny, linear_perp, 50_000, "c").reason == "below_lot"
    big_min = Instrument("X/USDT:USDT", "BTC", linear_perp.kind, amount_step=0.001, min_amount=0.01)
    small = run(pol, exp(0.005))
    assert plan(small, big_min, 50_000, "c").reason == "below_min_amount"
    min_cost = Instrument("Y/USDT:USDT", "BTC", linear_perp.kind, amount_step=0.001, min_cost=500.0)
    assert plan(small, min_cost, 50_000, "c").reason == "below_min_cost"


def test_plan_marks_pure_reductions_reduce_only(linear_perp: Instrument) -> None:
    d = run(BandPolicy(band=0.1), exp(-1.0))  # buy 1
    assert plan(d, linear_perp, 50_000, "c", position=-3.0).intent.reduce_only  # type: ignore[union-attr]
    assert not plan(d, linear_perp, 50_000, "c", position=0.5).intent.reduce_only  # type: ignore[union-attr]
