from __future__ import annotations

import math

import numpy as np
import pytest

from bot.core.book import Columns, exposure, line_greeks
from bot.core.greeks import black_scholes, year_fraction
from bot.core.instruments import Instrument, OptionType, Settlement
from bot.core.market import UnderlyingMarket
from tests.conftest import NOW_MS, option


def mkt(price: float, vol: float = 0.6, ivs: dict[tuple[str, str], float] | None = None):
    return UnderlyingMarket("BTC", NOW_MS, price, vol, 0.0, ivs or {})


def lines(*ins: Instrument) -> dict[tuple[str, str], Instrument]:
    return {("acc", i.symbol): i for i in ins}


def test_linear_perp_delta_is_contracts_times_size(linear_perp: Instrument) -> None:
    cols = Columns.of("BTC", lines(linear_perp))
    e = exposure(cols, {("acc", linear_perp.symbol): -2.5}, {}, mkt(50_000), NOW_MS, "usd")
    assert e.delta_coin == pytest.approx(-2.5)
    assert e.delta_usd == pytest.approx(-125_000)
    assert e.gamma_coin == 0.0


def test_inverse_perp_delta_is_n_f_over_p(inverse_perp: Instrument) -> None:
    cols = Columns.of("BTC", lines(inverse_perp))
    key = ("acc", inverse_perp.symbol)
    long = exposure(cols, {key: 100}, {}, mkt(50_000), NOW_MS, "coin")
    short = exposure(cols, {key: -100}, {}, mkt(50_000), NOW_MS, "coin")
    assert long.delta_coin == pytest.approx(100 * 10 / 50_000)
    assert short.delta_coin == pytest.approx(-100 * 10 / 50_000)
    # a short inverse perp's USD delta is -n*F whatever the price: the USD notional
    assert short.delta_usd == pytest.approx(-1000.0)
    assert long.gamma_coin == pytest.approx(-100 * 10 / 50_000**2)


def test_inverse_perp_delta_matches_pnl_derivative(inverse_perp: Instrument) -> None:
    # coin P&L of n contracts is n F (1/P0 - 1/P): its derivative in P is n F / P^2 coin/USD,
    # i.e. a coin delta (per relative move, times P) of n F / P.
    n, f, p = 300.0, 10.0, 42_000.0
    h = 1e-3
    pnl = lambda x: n * f * (1 / p - 1 / x)  # noqa: E731
    dpnl_dp = (pnl(p + h) - pnl(p - h)) / (2 * h)
    cols = Columns.of("BTC", lines(inverse_perp))
    e = exposure(cols, {("acc", inverse_perp.symbol): n}, {}, mkt(p), NOW_MS, "coin")
    # USD value of coin P&L moves like delta_coin: d(pnl * P)/dP at the start = n F / P
    assert e.delta_coin == pytest.approx(dpnl_dp * p, rel=1e-6)


def test_spot_counts_only_in_usd_view(spot: Instrument, linear_perp: Instrument) -> None:
    cols = Columns.of("BTC", lines(spot, linear_perp))
    pos = {("acc", spot.symbol): 3.0, ("acc", linear_perp.symbol): -1.0}
    assert exposure(cols, pos, {}, mkt(60_000), NOW_MS, "usd").delta_coin == pytest.approx(2.0)
    assert exposure(cols, pos, {}, mkt(60_000), NOW_MS, "coin").delta_coin == pytest.approx(-1.0)


def test_linear_option_uses_plain_black_scholes_delta() -> None:
    opt = option(Settlement.LINEAR, OptionType.CALL, 60_000, 30)
    cols = Columns.of("BTC", lines(opt))
    e = exposure(cols, {("acc", opt.symbol): -10}, {}, mkt(60_000, 0.5), NOW_MS, "usd")
    t = year_fraction(opt.expiry_ms or 0, NOW_MS)
    g = black_scholes(60_000, 60_000, t, 0.0, 0.5, True)
    assert e.delta_coin == pytest.approx(-10 * float(g.delta[()]))
    assert e.gamma_coin == pytest.approx(-10 * float(g.gamma[()]))
    assert e.vega_usd == pytest.approx(-10 * float(g.vega[()]))


@pytest.mark.parametrize("view", ["usd", "coin"])
def test_coin_settled_option_uses_premium_adjusted_delta(view: str) -> None:
    opt = option(Settlement.INVERSE, OptionType.CALL, 65_000, 30)
    cols = Columns.of("BTC", lines(opt))
    s = 60_000.0
    e = exposure(cols, {("acc", opt.symbol): 4}, {}, mkt(s, 0.7), NOW_MS, view)  # type: ignore[arg-type]
    t = year_fraction(opt.expiry_ms or 0, NOW_MS)
    g = black_scholes(s, 65_000, t, 0.0, 0.7, True)
    expected = 4 * (float(g.delta[()]) - float(g.price[()]) / s)
    assert e.delta_coin == pytest.approx(expected)
    assert e.delta_coin < 4 * float(g.delta[()])


def test_coin_settled_gamma_is_derivative_of_premium_adjusted_delta() -> None:
    opt = option(Settlement.INVERSE, OptionType.PUT, 55_000, 20)
    cols = Columns.of("BTC", lines(opt))
    pos = {("acc", opt.symbol): -3.0}
    s, h = 57_000.0, 1.0
    up = exposure(cols, pos, {}, mkt(s + h), NOW_MS, "usd").delta_coin
    down = exposure(cols, pos, {}, mkt(s - h), NOW_MS, "usd").delta_coin
    mid = exposure(cols, pos, {}, mkt(s), NOW_MS, "usd")
    assert mid.gamma_coin == pytest.approx((up - down) / (2 * h), rel=1e-4)


def test_option_iv_per_line_overrides_underlying_vol() -> None:
    opt = option(Settlement.LINEAR, OptionType.PUT, 50_000, 10)
    cols = Columns.of("BTC", lines(opt))
    key = ("acc", opt.symbol)
    low = exposure(cols, {key: 1}, {}, mkt(60_000, 0.3, {key: 0.3}), NOW_MS, "usd")
    high = exposure(cols, {key: 1}, {}, mkt(60_000, 0.3, {key: 1.2}), NOW_MS, "usd")
    assert high.delta_coin < low.delta_coin < 0  # more vol: an OTM put's delta grows in size


def test_in_flight_orders_count_in_delta(linear_perp: Instrument, spot: Instrument) -> None:
    cols = Columns.of("BTC", lines(spot, linear_perp))
    pos = {("acc", spot.symbol): 2.0}
    e = exposure(cols, pos, {("acc", linear_perp.symbol): -1.5}, mkt(60_000), NOW_MS, "usd")
    assert e.delta_coin == pytest.approx(0.5)
    assert e.in_flight_coin == pytest.approx(-1.5)


def test_columns_keep_only_their_underlying(linear_perp: Instrument) -> None:
    eth = Instrument("ETH/USDT:USDT", "ETH", linear_perp.kind, contract_size=1.0)
    cols = Columns.of("BTC", {("a", linear_perp.symbol): linear_perp, ("a", eth.symbol): eth})
    assert cols.keys == (("a", linear_perp.symbol),)


def test_expired_option_has_no_time_value() -> None:
    opt = option(Settlement.LINEAR, OptionType.CALL, 50_000, 1)
    cols = Columns.of("BTC", lines(opt))
    later = NOW_MS + 2 * 86_400_000
    g = line_greeks(cols, mkt(60_000), later, "usd")
    assert np.allclose(g.delta, [1.0]) and math.isclose(float(g.gamma[0]), 0.0)
