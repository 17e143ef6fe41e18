"""Scenario grid and historical VaR by full revaluation (bot/core/scenarios.py), by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.core import risk
from bot.core.book import Columns
from bot.core.greeks import black_scholes, year_fraction
from bot.core.instruments import Instrument, OptionType, Settlement
from bot.core.scenarios import (
    BookInputs,
    MissingIV,
    daily_return,
    historical_pnl,
    inverse_pnl_coin,
    scenario_grid,
    var_cvar,
)
from tests.conftest import NOW_MS, option

SPOTS = [-30.0, -10.0, 0.0, 10.0, 30.0]
IVS = [-20.0, 0.0, 20.0]


def book(qty: dict[Instrument, float], s0: float, ivs: dict[Instrument, float] | None = None):
    lines = {("acc", i.symbol): i for i in qty}
    cols = Columns.of("BTC", lines)
    q = cols.quantities({("acc", i.symbol): v for i, v in qty.items()})
    iv = cols.option_ivs({("acc", i.symbol): v for i, v in (ivs or {}).items()}, math.nan)
    return BookInputs(cols, q, iv, s0, 0.0, NOW_MS)


def test_linear_perp_pnl_is_qty_size_ds(linear_perp: Instrument) -> None:
    b = book({linear_perp: -2.5}, 50_000.0)
    g = scenario_grid(b, SPOTS, IVS)
    size = linear_perp.contract_size
    for row in g.pnl_usd:  # no option: every IV row is the same
        for pct, v in zip(SPOTS, row, strict=True):
            assert v == pytest.approx(-2.5 * size * 50_000 * pct / 100)
    assert g.worst() == {
        "spot_pct": 30.0,
        "iv_points": -20.0,
        "pnl_usd": pytest.approx(-2.5 * size * 15_000),
    }


def test_inverse_perp_pnl_in_coin_and_usd(inverse_perp: Instrument) -> None:
    s0, n, f = 50_000.0, -100.0, inverse_perp.contract_size
    b = book({inverse_perp: n}, s0)
    g = scenario_grid(b, [-20.0, 20.0], [0.0])
    for pct, v in zip([-20.0, 20.0], g.pnl_usd[0], strict=True):
        s = s0 * (1 + pct / 100)
        coin = n * f * (1 / s0 - 1 / s)  # the contract's coin P&L
        assert inverse_pnl_coin(n, f, s0, s) == pytest.approx(coin)
        assert v == pytest.approx(coin * s)
    # short inverse: gains when the price falls
    assert g.pnl_usd[0][0] > 0 > g.pnl_usd[0][1]


@pytest.mark.parametrize("settlement", [Settlement.LINEAR, Settlement.INVERSE])
def test_option_against_black_scholes(settlement: Settlement) -> None:
    opt = option(settlement, OptionType.CALL, 55_000, 30)
    s0, sigma, qty = 50_000.0, 0.6, 3.0
    b = book({opt: qty}, s0, {opt: sigma})
    g = scenario_grid(b, [-10.0, 0.0, 10.0], [-20.0, 0.0, 20.0])
    t = year_fraction(opt.expiry_ms or 0, NOW_MS)

    def price(s: float, vol: float) -> float:
        return float(black_scholes(s, 55_000, t, 0.0, vol, True).price)

    for r, pts in enumerate([-20.0, 0.0, 20.0]):
        for c, pct in enumerate([-10.0, 0.0, 10.0]):
            s = s0 * (1 + pct / 100)
            usd = price(s, sigma + pts / 100)
            # coin-settled: the premium is usd/s coin, worth usd again at s
            value = usd / s * s if settlement is Settlement.INVERSE else usd
            want = qty * (value - price(s0, sigma))
            assert g.pnl_usd[r][c] == pytest.approx(want, rel=1e-9, abs=1e-6)
    assert g.pnl_usd[1][1] == pytest.approx(0.0, abs=1e-9)


def test_iv_shock_moves_only_options(linear_perp: Instrument) -> None:
    opt = option(Settlement.LINEAR, OptionType.PUT, 45_000, 10)
    perp_only = scenario_grid(book({linear_perp: 1.0}, 50_000.0), [5.0], IVS)
    assert len({row[0] for row in perp_only.pnl_usd}) == 1
    both = scenario_grid(book({linear_perp: 1.0, opt: 2.0}, 50_000.0, {opt: 0.5}), [5.0], IVS)
    col = [row[0] for row in both.pnl_usd]
    assert col[0] < col[1] < col[2]  # long options gain with vol


def test_held_option_without_iv_is_an_error() -> None:
    opt = option(Settlement.LINEAR, OptionType.CALL, 50_000, 10)
    with pytest.raises(MissingIV, match="no implied vol"):
        scenario_grid(book({opt: 1.0}, 50_000.0), SPOTS, IVS)


def test_var_cvar_hand_computed() -> None:
    # 200 scenarios: losses 1..200. k = 200 - ceil(198) + 1 = 3: VaR = 3rd worst = 198,
    # CVaR = mean(200, 199, 198) = 199.
    pnl = [-float(x) for x in range(1, 201)]
    assert var_cvar(pnl) == (198.0, 199.0)
    # 100 scenarios: k = 2, VaR = 2nd worst.
    pnl100 = [10.0] * 98 + [-50.0, -70.0]
    assert var_cvar(pnl100) == (50.0, 60.0)


def test_historical_var_of_a_linear_book(linear_perp: Instrument) -> None:
    b = book({linear_perp: 1.0}, 100.0)
    rets = [daily_return(100.0, p, 86_400.0) for p in (90.0, 95.0, 100.0, 105.0)]
    pnl = historical_pnl(b, rets)
    size = linear_perp.contract_size
    assert pnl.tolist() == pytest.approx([-10 * size, -5 * size, 0.0, 5 * size])
    # an hourly return counts sqrt(24) times
    assert daily_return(100.0, 101.0, 3600.0) == pytest.approx(math.log(1.01) * math.sqrt(24))
    assert var_cvar(np.asarray(pnl)) == pytest.approx((10 * size, 10 * size))


def test_var_rule_hysteresis() -> None:
    st = risk.RiskState()
    assert risk.apply_var(st, None, 100.0) is st  # no VaR: nothing changes
    hi = risk.apply_var(st, 101.0, 100.0)
    assert (hi.trading_state, hi.state_reason) == (risk.TradingState.REDUCING_ONLY, "var_limit")
    assert risk.apply_var(hi, 95.0, 100.0) is hi  # between 90% and the limit: stays
    lo = risk.apply_var(hi, 89.0, 100.0)
    assert (lo.trading_state, lo.state_reason) == (risk.TradingState.ACTIVE, "var_recovered")
    op = risk.set_trading_state(st, risk.TradingState.REDUCING_ONLY, "operator")
    assert risk.apply_var(op, 1.0, 100.0) is op  # never lifts an operator's state
