"""Each trigger policy's band, with the numbers worked by hand in the comments; the inputs the
policies read (gross notional, option tau/IV/vanna, hedge cost, realized vol)."""

from __future__ import annotations

import math

import pytest

from bot.core.book import Columns, Exposure, exposure
from bot.core.greeks import MS_PER_YEAR
from bot.core.instruments import Instrument, OptionType, Settlement
from bot.core.market import BookLevel, OrderBook, Ticker, UnderlyingMarket, half_spread
from bot.core.policy import Aim, BandPolicy, WhalleyWilmott, Zakamouline, decide, policy_vol
from bot.core.vol import EwmaVol, ewma_fold, ewma_update
from tests.conftest import NOW_MS, option


def exp(
    delta: float = 0.0,
    price: float = 50_000.0,
    gamma: float = 0.0,
    gross: float = 0.0,
    tau: float = 0.0,
    iv: float = math.nan,
    vanna: float = 0.0,
) -> Exposure:
    return Exposure(
        "BTC", 0, price, delta, delta * price, gamma, 0.0, 0.0, 0.0, gross, tau, iv, vanna
    )


def mkt(
    price: float = 50_000.0,
    fee: float = 0.0005,
    half_spread: float = 0.0001,
    rate: float = 0.0,
    vol: float = math.nan,
) -> UnderlyingMarket:
    return UnderlyingMarket(
        "BTC", 0, price, vol, rate, hedge_fee=fee, hedge_half_spread=half_spread
    )


# ---- band: width in coin, usd or percent of gross notional ----------------------------------


def test_band_in_usd_with_the_aim_in_coin() -> None:
    # 5 000 USD at 50 000 USD/BTC is 0.1 BTC
    b = BandPolicy(band=5_000, band_unit="usd").band_for(exp(), mkt(), 0)
    assert (b.lower, b.upper, b.unit) == (pytest.approx(0.1), pytest.approx(0.1), "coin")


def test_band_in_coin_with_the_aim_in_usd() -> None:
    b = BandPolicy(band=0.2, band_unit="coin", aim=Aim(unit="usd")).band_for(exp(), mkt(), 0)
    assert b.half_width == pytest.approx(10_000)  # 0.2 BTC x 50 000


def test_band_in_percent_of_gross_notional() -> None:
    # 2 % of 1 000 000 USD gross = 20 000 USD = 0.4 BTC; asymmetric sides scale the same way
    pol = BandPolicy(band=2.0, lower=1.0, upper=2.0, band_unit="pct_gross")
    b = pol.band_for(exp(gross=1_000_000), mkt(), 0)
    assert (b.lower, b.upper) == (pytest.approx(0.2), pytest.approx(0.4))
    usd = BandPolicy(band=2.0, band_unit="pct_gross", aim=Aim(unit="usd"))
    assert usd.band_for(exp(gross=1_000_000), mkt(), 0).upper == pytest.approx(20_000)


def test_percent_of_an_empty_book_is_a_band_that_never_trades() -> None:
    d = decide(
        BandPolicy(band=2.0, band_unit="pct_gross"), exp(0.5), mkt(), 0, order_in_flight=False
    )
    assert not d.trade and d.reason == "bad_band: lower is 0.0 (must be > 0)"


def test_band_unit_defaults_to_the_aim_unit() -> None:
    assert BandPolicy(band=0.3).band_for(exp(), mkt(), 0).upper == 0.3
    assert BandPolicy(band=300, aim=Aim(unit="usd")).band_for(exp(), mkt(), 0).upper == 300


# ---- Whalley-Wilmott --------------------------------------------------------------------------


def ww(**kw: object) -> WhalleyWilmott:
    args: dict[str, object] = {"risk_aversion": 1e-4, "floor": 0.01, "cap": 5.0}
    args.update(kw)
    return WhalleyWilmott(**args)  # type: ignore[arg-type]


def test_whalley_wilmott_half_width_by_hand() -> None:
    # lambda = 0.0005 + 0.0001 = 0.0006; S = 50 000; Gamma = -0.0002 BTC/USD; risk aversion 1e-4
    # H^3 = 1.5 x 0.0006 x 50 000 x (0.0002)^2 / 1e-4 = 1.5 x 0.0006 = 0.0009; x 50 000 = 45;
    # x 4e-8 = 1.8e-6; / 1e-4 = 0.018  ->  H = 0.018^(1/3) = 0.262074 BTC
    b = ww().band_for(exp(gamma=-0.0002), mkt(), 0)
    assert b.lower == b.upper == pytest.approx(0.262074, rel=1e-5)
    assert (b.center, b.to, b.unit) == (0.0, "edge", "coin")


def test_whalley_wilmott_discounts_by_the_options_expiry() -> None:
    # r = 5 %, tau = 0.5 y: exp(-0.025) = 0.975310; H^3 = 0.018 x 0.975310 = 0.0175556
    # H = 0.0175556^(1/3) = 0.259899
    b = ww().band_for(exp(gamma=-0.0002, tau=0.5), mkt(rate=0.05), 0)
    assert b.upper == pytest.approx(0.259899, rel=1e-5)


def test_whalley_wilmott_in_usd_and_around_target_plus_bias() -> None:
    pol = ww(aim=Aim(unit="usd", target=1_000.0, bias=500.0), floor=100.0, cap=1e6)
    b = pol.band_for(exp(gamma=-0.0002), mkt(), 0)
    assert b.center == 1_500.0
    assert b.upper == pytest.approx(0.262074 * 50_000, rel=1e-5)  # 13 103.7 USD


def test_whalley_wilmott_floor_and_cap() -> None:
    assert ww().band_for(exp(gamma=0.0), mkt(), 0).upper == 0.01  # no gamma: the floor
    # Gamma 0.1: H^3 = 1.5 x 0.0006 x 50 000 x 0.01 / 1e-4 = 4500, H = 16.5: the cap
    assert ww().band_for(exp(gamma=0.1), mkt(), 0).upper == 5.0
    # no cost known (fee and spread 0): H = 0, the floor
    assert ww().band_for(exp(gamma=-0.0002), mkt(fee=0, half_spread=0), 0).upper == 0.01
    # floor and cap in percent of gross: 0.1 % and 1 % of 10 000 000 USD = 0.2 and 2 BTC
    pct = ww(floor=0.1, cap=1.0, band_unit="pct_gross")
    assert pct.band_for(exp(gamma=0.0, gross=1e7), mkt(), 0).upper == pytest.approx(0.2)
    assert pct.band_for(exp(gamma=0.1, gross=1e7), mkt(), 0).upper == pytest.approx(2.0)


def test_whalley_wilmott_trades_to_the_edge() -> None:
    d = decide(ww(), exp(1.0, gamma=-0.0002), mkt(), 0, order_in_flight=False)
    assert d.trade and d.policy == "whalley_wilmott"
    assert d.gap_coin == pytest.approx(-(1.0 - 0.262074), rel=1e-5)


@pytest.mark.parametrize(
    ("kw", "rule"),
    [
        ({"risk_aversion": 0.0}, "risk_aversion must be finite and > 0"),
        ({"floor": math.nan}, "floor must be finite and > 0"),
        ({"floor": 2.0, "cap": 1.0}, "floor must be <= cap"),
    ],
)
def test_cost_band_arguments_are_checked(kw: dict[str, float], rule: str) -> None:
    with pytest.raises(ValueError, match=rule):
        ww(**kw)


# ---- Zakamouline ------------------------------------------------------------------------------


def zak(**kw: object) -> Zakamouline:
    args: dict[str, object] = {"risk_aversion": 1e-3, "floor": 0.01, "cap": 5.0}
    args.update(kw)
    return Zakamouline(**args)  # type: ignore[arg-type]


# lambda = 0.001 (fee 0.0008 + half-spread 0.0002), sigma = 0.5 (the options' IV), tau = 0.25,
# r = 0, S = 40 000, Gamma = -0.0005 BTC/USD (short), risk aversion 1e-3, vanna 2 BTC per 1.00 vol
ZAK_EXP = exp(delta=0.0, price=40_000.0, gamma=-0.0005, tau=0.25, iv=0.5, vanna=2.0)
ZAK_MKT = mkt(price=40_000.0, fee=0.0008, half_spread=0.0002)


def test_zakamouline_parts_by_hand() -> None:
    p = zak().parts(ZAK_EXP, ZAK_MKT)
    # K = -4.76 x 0.001^0.78 / 0.25^0.02 x (1 / 0.5)^0.25 x (1e-3 x 40 000^2 x 0.0005)^0.15
    #   = -4.76 x 0.0045709 / 0.972655 x 1.189207 x 800^0.15 (= 2.725660)  = -0.072510
    # short gamma: sigma_m^2 = 0.25 x (1 + 0.072510) -> sigma_m = 0.5 x 1.035621 = 0.517811
    assert p.sigma == 0.5
    assert p.sigma_m == pytest.approx(0.517811, rel=1e-4)
    # H0 = 0.001 / (1e-3 x 40 000 x 0.25 x 0.25) = 0.001 / 2.5 = 0.0004
    assert p.h0 == pytest.approx(0.0004)
    # H1 = 1.12 x 0.001^0.31 (0.117490) x 0.25^0.05 (0.933033) x 2^0.25 (1.189207)
    #      x (0.0005 / 1e-3)^0.5 (0.707107) = 0.103243
    assert p.h1 == pytest.approx(0.103243, rel=1e-4)
    # centre shift = -vanna x (sigma_m - sigma) = -2 x 0.017811 = -0.035621
    assert p.shift == pytest.approx(-0.035621, rel=1e-3)


def test_zakamouline_band() -> None:
    b = zak(aim=Aim(target=0.1)).band_for(ZAK_EXP, ZAK_MKT, 0)
    assert b.center == pytest.approx(0.1 - 0.035621, rel=1e-3)
    assert b.upper == b.lower == pytest.approx(0.0004 + 0.103243, rel=1e-4)
    assert b.to == "edge"


def test_zakamouline_long_gamma_lowers_the_vol() -> None:
    # same numbers, long gamma: sigma_m^2 = 0.25 x (1 - 0.072510), sigma_m = 0.481543
    long = exp(price=40_000.0, gamma=0.0005, tau=0.25, iv=0.5, vanna=2.0)
    p = zak().parts(long, ZAK_MKT)
    assert p.sigma_m == pytest.approx(0.481543, rel=1e-4)
    assert p.shift == pytest.approx(-2.0 * (0.481543 - 0.5), rel=1e-3)


def test_zakamouline_without_options_is_the_cap_around_the_aim() -> None:
    b = zak().band_for(exp(price=40_000.0), ZAK_MKT, 0)
    assert (b.center, b.upper) == (0.0, 5.0)


def test_zakamouline_with_no_vol_known_never_trades() -> None:
    # options held (tau > 0) but no IV and no realized vol yet
    e = exp(1.0, price=40_000.0, gamma=-0.0005, tau=0.25)
    d = decide(zak(), e, ZAK_MKT, 0, order_in_flight=False)
    assert not d.trade and d.reason.startswith("bad_band:")


def test_zakamouline_uses_realized_vol_where_no_option_iv() -> None:
    e = exp(price=40_000.0, gamma=-0.0005, tau=0.25, vanna=2.0)
    p = zak().parts(e, mkt(price=40_000.0, fee=0.0008, half_spread=0.0002, vol=0.5))
    assert p.sigma == 0.5 and p.h1 == pytest.approx(0.103243, rel=1e-4)


# ---- the vol a policy uses, and the realized-vol EWMA ------------------------------------------


def test_policy_vol_prefers_the_options_iv() -> None:
    assert policy_vol(exp(iv=0.7), mkt(vol=0.4)) == 0.7
    assert policy_vol(exp(), mkt(vol=0.4)) == 0.4
    d = decide(BandPolicy(band=1.0), exp(), mkt(vol=0.4), 0, order_in_flight=False)
    assert d.vol == 0.4 and d.as_dict()["vol"] == 0.4
    unknown = decide(BandPolicy(band=1.0), exp(), mkt(), 0, order_in_flight=False)
    assert unknown.as_dict()["vol"] is None  # JSON-safe: no NaN in events


HOUR_MS = 3_600_000


def test_ewma_vol_by_hand() -> None:
    s = ewma_update(EwmaVol(), 100.0, 0, 3600)
    assert math.isnan(s.vol)  # one price: no return yet
    s = ewma_update(s, 101.0, HOUR_MS, 3600)
    # one return ln(1.01) = 0.00995033 over 1 h = 1/8766 y (365.25 d): variance 0.00995033^2 x 8766
    first = math.log(1.01) ** 2 / (HOUR_MS / MS_PER_YEAR)
    assert s.variance == pytest.approx(first) and s.vol == pytest.approx(0.931619, rel=1e-5)
    s = ewma_update(s, 102.0, 3 * HOUR_MS, 3600)
    # 2 h later (two half-lives): keep 0.25 of the old, 0.75 of ln(102/101)^2 / (2/8760)
    second = math.log(102 / 101) ** 2 / (2 * HOUR_MS / MS_PER_YEAR)
    assert s.variance == pytest.approx(0.25 * first + 0.75 * second)
    assert s.returns == 2


def test_ewma_ignores_bad_and_repeated_prices() -> None:
    s = ewma_update(ewma_update(EwmaVol(), 100.0, 0, 60), 100.0, 60_000, 60)
    assert s.vol == 0.0
    for price, ts in ((math.nan, 120_000), (-1.0, 120_000), (0.0, 120_000), (101.0, 60_000)):
        assert ewma_update(s, price, ts, 60) == s
    with pytest.raises(ValueError, match="half_life_s must be > 0"):
        ewma_update(s, 100.0, 120_000, 0)


@pytest.mark.parametrize("start", [EwmaVol(), EwmaVol(100.0, 0), EwmaVol(100.0, 0, 0.4, 3)])
def test_ewma_fold_is_ewma_update_in_turn_to_the_bit(start: EwmaVol) -> None:
    """A backtest's quiet span folds its prices at once: the same state, float for float,
    as one update per tick, bad and repeated prices and uneven steps included."""
    prices = [100.5, 101.2, math.nan, 99.8, -1.0, 99.9, 100.0, 100.0, 102.3, 101.7]
    times = [60_000 * (i + 1) for i in range(len(prices))]
    times[6] = times[5]  # a repeated tick carries no return
    times[8] += 17_000  # an uneven step
    one = start
    for p, t in zip(prices, times, strict=True):
        one = ewma_update(one, p, t, 3600)
    assert ewma_fold(start, prices, times, 3600) == one


# ---- what the exposure and the market snapshot carry for the policies -------------------------


def test_exposure_gross_notional_tau_iv_and_vanna(linear_perp: Instrument) -> None:
    call = option(Settlement.LINEAR, OptionType.CALL, 50_000, 30)
    lines = {("a", linear_perp.symbol): linear_perp, ("a", call.symbol): call}
    cols = Columns.of("BTC", lines)
    pos = {("a", linear_perp.symbol): -2.0, ("a", call.symbol): 3.0}

    def at(iv: float) -> Exposure:
        m = UnderlyingMarket("BTC", NOW_MS, 50_000.0, 0.6, 0.0, {("a", call.symbol): iv})
        return exposure(cols, pos, {}, m, NOW_MS, "usd")

    e = at(0.6)
    # gross: |-2| BTC of perp + 3 BTC of options (underlying amount) = 5 BTC x 50 000
    assert e.gross_usd == pytest.approx(250_000)
    assert e.option_tau == pytest.approx(30 / 365.25) and e.option_iv == pytest.approx(0.6)
    # vanna against a central difference of the delta in vol
    h = 1e-4
    numeric = (at(0.6 + h).delta_coin - at(0.6 - h).delta_coin) / (2 * h)
    assert e.vanna_coin == pytest.approx(numeric, rel=1e-4)


def test_inverse_option_vanna_is_of_the_premium_adjusted_delta() -> None:
    put = option(Settlement.INVERSE, OptionType.PUT, 45_000, 60)
    cols = Columns.of("BTC", {("a", put.symbol): put})

    def at(iv: float) -> Exposure:
        m = UnderlyingMarket("BTC", NOW_MS, 50_000.0, 0.6, 0.0, {("a", put.symbol): iv})
        return exposure(cols, {("a", put.symbol): -4.0}, {}, m, NOW_MS, "coin")

    h = 1e-4
    numeric = (at(0.7 + h).delta_coin - at(0.7 - h).delta_coin) / (2 * h)
    assert at(0.7).vanna_coin == pytest.approx(numeric, rel=1e-4)


def test_no_options_no_tau_no_iv(linear_perp: Instrument) -> None:
    cols = Columns.of("BTC", {("a", linear_perp.symbol): linear_perp})
    m = UnderlyingMarket("BTC", NOW_MS, 50_000.0, 0.6)
    e = exposure(cols, {("a", linear_perp.symbol): 1.0}, {}, m, NOW_MS, "usd", 0.5)
    assert (e.option_tau, e.vanna_coin) == (0.0, 0.0) and math.isnan(e.option_iv)
    assert e.gross_usd == pytest.approx(1.5 * 50_000)  # the reported external delta counts


def test_half_spread_from_the_book_else_the_ticker() -> None:
    t = Ticker("X", 0, 99.0, 101.0)
    book = OrderBook("X", 0, (BookLevel(99.9, 1),), (BookLevel(100.1, 1),))
    assert half_spread(book, t) == pytest.approx(0.2 / 200)  # (ask - bid) / 2 / mid = 0.1 / 100
    assert half_spread(None, t) == pytest.approx(2 / 200)
    assert half_spread(OrderBook("X", 0, (), ()), t) == pytest.approx(0.01)
    assert half_spread(None, Ticker("X", 0, None, 101.0)) == 0.0
