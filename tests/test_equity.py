"""Coin equity (bot/core/equity.py): hand-computed numbers, and the rule it exists for: equity +
contract deltas is the derivative of the account's USD value (checked against the simulated
exchange's own books and the backtest's valuation)."""

from __future__ import annotations

import math
from collections.abc import Mapping

import numpy as np
import pytest

from bot.backtest.valuation import value_usd
from bot.core import equity as eq
from bot.core.book import Columns, exposure
from bot.core.greeks import black_scholes, year_fractions
from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import UnderlyingMarket
from bot.hedger.equity import EquityTracker, with_ivs
from bot.venues.ccxt_profiles import profile_for
from bot.venues.sim.ledger import Ledger

DAY = 86_400_000
NOW = 1_767_225_600_000
PERP = Instrument("BTC/USD:BTC", "BTC", Kind.PERP, Settlement.INVERSE, contract_size=10.0)
LPERP = Instrument("BTC/USDT:USDT", "BTC", Kind.PERP, quote="USDT")
SPOT = Instrument("BTC/USDT", "BTC", Kind.SPOT, quote="USDT")
CALL = Instrument(
    "BTC/USD:BTC-260131-60000-C",
    "BTC",
    Kind.OPTION,
    Settlement.INVERSE,
    expiry_ms=NOW + 30 * DAY,
    strike=60_000.0,
    option_type=OptionType.CALL,
)
PUT = Instrument(
    "BTC/USD:BTC-260131-60000-P",
    "BTC",
    Kind.OPTION,
    Settlement.INVERSE,
    expiry_ms=NOW + 30 * DAY,
    strike=60_000.0,
    option_type=OptionType.PUT,
)


def coin_equity(
    accounts: Mapping[str, eq.CoinAccount],
    lines: Mapping[tuple[str, str], Instrument],
    positions: Mapping[tuple[str, str], float],
    price: float,
    marks: Mapping[tuple[str, str], float],
) -> float:
    """The reference form of the usd view's E, on mappings: the accounts' bases plus the coin
    value of their coin-settled positions at `price` (EquityTracker computes it on arrays)."""
    own = {k: i for k, i in lines.items() if k[0] in accounts}
    return sum(a.basis for a in accounts.values()) + eq.positions_value_coin(
        own, positions, price, marks
    )


def spot_coin(
    lines: Mapping[tuple[str, str], Instrument],
    positions: Mapping[tuple[str, str], float],
    accounts: set[str],
) -> float:
    """Coin in spot lines of `accounts` (the balances already hold it)."""
    return sum(
        positions.get(k, 0.0) * i.contract_size
        for k, i in lines.items()
        if k[0] in accounts and i.kind is Kind.SPOT
    )


def test_fill_flows_hand_computed() -> None:
    # inverse perp: 100 contracts of 10 USD bought at 50000 pay 0.02 BTC of entry value
    assert eq.fill_flow(PERP, 100, 50_000.0, 0.0, "BTC") == pytest.approx(0.02)
    # the fee in BTC comes off; a sell is the mirror
    assert eq.fill_flow(PERP, -100, 40_000.0, 0.001, "BTC") == pytest.approx(-0.025 - 0.001)
    # coin option sold: premium 0.05 BTC per contract x 3 received
    assert eq.fill_flow(CALL, -3, 0.05, 0.0003, "BTC") == pytest.approx(0.15 - 0.0003)
    # spot bought: 0.5 BTC in; the USDT fee does not touch BTC
    assert eq.fill_flow(SPOT, 0.5, 60_000.0, 12.0, "USDT") == pytest.approx(0.5)
    # linear perps move no coin
    assert eq.fill_flow(LPERP, 2.0, 60_000.0, 30.0, "USDT") == 0.0


def test_entry_cost_reduce_and_flip() -> None:
    # long 100 at 50000 (0.02 BTC), sell 150 at 40000: 100 close at the average entry,
    # 50 open short at 40000 (-50 x 10 / 40000 = -0.0125)
    cost = eq.entry_cost(0.0, 0.0, 100, 50_000.0, 10.0)
    assert cost == pytest.approx(0.02)
    assert eq.entry_cost(100, cost, -150, 40_000.0, 10.0) == pytest.approx(-0.0125)
    assert eq.entry_cost(100, cost, -40, 40_000.0, 10.0) == pytest.approx(0.012)


def test_wallet_read_counts_unrealized_coin_pnl() -> None:
    """1 BTC cash, long 100 x 10 USD from 50000: at 40000 the account holds 1 BTC plus the
    unrealized 100 x 10 x (1/50000 - 1/40000) = -0.005 BTC."""
    acct = eq.CoinAccount()
    acct.on_fill(PERP, 100, 50_000.0, 0.0, "BTC")
    acct.on_read(1.0, "wallet", {PERP.symbol: PERP}, {PERP.symbol: 100}, 45_000.0, {})
    assert acct.basis == pytest.approx(1.02)
    lines = {("d", PERP.symbol): PERP}
    e = coin_equity({"d": acct}, lines, {("d", PERP.symbol): 100}, 40_000.0, {})
    assert e == pytest.approx(0.995)


def test_equity_read_is_not_counted_twice() -> None:
    """A venue whose total is already equity (Deribit): read 1.005 BTC at 40000 with the same
    long; at 40000 the equity is 1.005, at 50000 the position's coin value gained
    100 x 10 x (1/40000 - 1/50000) = 0.005."""
    acct = eq.CoinAccount()
    acct.on_read(1.005, "equity", {PERP.symbol: PERP}, {PERP.symbol: 100}, 40_000.0, {})
    lines = {("d", PERP.symbol): PERP}
    held = {("d", PERP.symbol): 100.0}
    assert coin_equity({"d": acct}, lines, held, 40_000.0, {}) == pytest.approx(1.005)
    assert coin_equity({"d": acct}, lines, held, 50_000.0, {}) == pytest.approx(1.01)


def test_position_unexplained_by_fills_enters_at_read_price() -> None:
    acct = eq.CoinAccount()
    acct.on_read(2.0, "wallet", {PERP.symbol: PERP}, {PERP.symbol: -600}, 60_000.0, {})
    assert acct.basis == pytest.approx(2.0 - 0.1)
    lines = {("d", PERP.symbol): PERP}
    e = coin_equity({"d": acct}, lines, {("d", PERP.symbol): -600.0}, 60_000.0, {})
    assert e == pytest.approx(2.0)


def test_spot_lines_counted_once() -> None:
    lines = {("a", SPOT.symbol): SPOT, ("external:otc", SPOT.symbol): SPOT}
    held = {("a", SPOT.symbol): 0.7, ("external:otc", SPOT.symbol): 5.0}
    # only the lines of accounts whose balances were read are already in the balances
    assert spot_coin(lines, held, {"a"}) == pytest.approx(0.7)


def _market(price: float) -> UnderlyingMarket:
    return UnderlyingMarket("BTC", NOW, price, 0.6, 0.0, {})


@pytest.mark.parametrize("price", [52_000.0, 60_000.0, 71_000.0])
def test_equity_plus_deltas_is_the_usd_value_slope(price: float) -> None:
    """A coin-margined account of the simulated exchange (1 BTC collateral, short a straddle
    sold at fair value, short the inverse perp bought back in part at another price): the
    usd view's delta (equity + contract deltas) is d(USD value)/dP of the backtest valuation,
    and the coin view's misses exactly the equity."""
    book = Ledger(balances={"BTC": 1.0})
    ins = {i.symbol: i for i in (PERP, CALL, PUT)}
    acct = eq.CoinAccount(basis=1.0)  # as a wallet read of the 1 BTC would set it
    t = year_fractions([CALL.expiry_ms], NOW)
    for o, q in ((CALL, -2.0), (PUT, -2.0)):
        g = black_scholes(60_000.0, [60_000.0], t, 0.0, [0.6], [o is CALL])
        book.trade(o, q, float(g.price[0]) / 60_000.0, 0.0)
        acct.on_fill(o, q, float(g.price[0]) / 60_000.0, 0.0, "BTC")
    for q, p, fee in ((-9_000.0, 60_000.0, 0.0004), (2_500.0, 55_000.0, 0.0001)):
        book.trade(PERP, q, p, fee)
        acct.on_fill(PERP, q, p, fee, "BTC")
    lines = {("d", s): i for s, i in ins.items()}
    held = {("d", s): p.qty for s, p in book.positions.items()}
    cols = Columns.of("BTC", lines)

    def value(s: float) -> float:
        marks = {k[1]: m for k, m in eq.option_marks_coin(cols, _market(s), NOW).items()}
        return value_usd(book, ins, {"BTC": s}, marks)

    h = 1.0
    slope = (value(price + h) - value(price - h)) / (2 * h)
    marks = eq.option_marks_coin(cols, _market(price), NOW)
    e = coin_equity({"d": acct}, lines, held, price, marks)
    coin_view = exposure(cols, held, {}, _market(price), NOW, "coin")
    usd_view = exposure(cols, held, {}, _market(price), NOW, "usd", e)
    assert usd_view.delta_coin == pytest.approx(slope, abs=1e-6)
    assert coin_view.delta_coin + e == pytest.approx(slope, abs=1e-6)
    assert not math.isclose(coin_view.delta_coin, slope, abs_tol=0.1)


def test_backtest_valuation_of_coin_balances_and_inverse_positions() -> None:
    """1 BTC, long 100 x 10 USD from 50000 (entry 0.02 BTC), short 2 coin calls sold at 0.05:
    at 40000 with the call marked at 0.01 BTC the account is worth
    (1 + 0.1) x 40000 + (0.02 - 0.025) x 40000 - 2 x 0.01 x 40000 = 43000 USD."""
    book = Ledger(balances={"BTC": 1.0})
    book.trade(PERP, 100, 50_000.0, 0.0)
    book.trade(CALL, -2, 0.05, 0.0)
    ins = {PERP.symbol: PERP, CALL.symbol: CALL}
    value = value_usd(book, ins, {"BTC": 40_000.0}, {CALL.symbol: 0.01})
    assert value == pytest.approx(43_000.0)


def test_how_ccxt_balance_totals_read() -> None:
    """ccxt's total is Deribit's account-summary `equity` and OKX's `eq` (marked to market),
    Bybit's `walletBalance` (cash): the equity reads must not add the marked part again."""
    assert profile_for("deribit").balance_total == "equity"
    assert profile_for("okx").balance_total == "equity"
    assert profile_for("bybit").balance_total == "wallet"


@pytest.mark.parametrize("seed", range(6))
def test_the_trackers_array_kernel_is_the_mapping_form(seed: int) -> None:
    """EquityTracker.delta_coin (the decision path, on the view's arrays) and delta_coin_span
    (a backtest's quiet span) give coin_equity - spot_coin on random books: two accounts read,
    one not, coin-settled and linear options, inverse and linear perps, spot, some IVs unknown."""
    rng = np.random.default_rng(seed)
    lines: dict[tuple[str, str], Instrument] = {}
    for acc in ("a", "b", "c"):
        for ins in (PERP, LPERP, SPOT, CALL, PUT):
            lines[(acc, ins.symbol)] = ins
        for i in range(4):
            lines[(acc, f"O{i}")] = Instrument(
                f"O{i}",
                "BTC",
                Kind.OPTION,
                Settlement.INVERSE if i % 2 else Settlement.LINEAR,
                expiry_ms=NOW + int(rng.uniform(-1, 60) * DAY),
                strike=float(round(rng.uniform(40_000, 80_000), -3)),
                option_type=OptionType.CALL if i < 2 else OptionType.PUT,
            )
    cols = Columns.of("BTC", lines)
    held = np.where(rng.random(len(cols.keys)) < 0.8, rng.normal(0, 50, len(cols.keys)), 0.0)
    iv = np.where(
        cols.is_option & (rng.random(len(cols.keys)) < 0.7), rng.uniform(0.3, 1.2), np.nan
    )
    positions = {k: float(q) for k, q in zip(cols.keys, held, strict=True) if q != 0.0}
    price = float(rng.uniform(45_000, 75_000))
    mkt = UnderlyingMarket("BTC", NOW, price, 0.55, 0.01, {})
    tracker = EquityTracker(lines, positions, lambda _: None, lambda: NOW)
    accounts = {"a": eq.CoinAccount(basis=1.5), "b": eq.CoinAccount(basis=-0.25)}
    tracker.accounts["BTC"] = accounts
    with_iv = with_ivs(cols, iv, mkt)
    marks = eq.option_marks_coin(cols, with_iv, NOW)
    want = coin_equity(accounts, lines, positions, price, marks) - spot_coin(
        lines, positions, set(accounts)
    )
    assert tracker.delta_coin("BTC", cols, held, iv, mkt) == pytest.approx(want, rel=1e-12)
    s = np.array([price * 0.9, price, price * 1.1])
    at = np.array([NOW, NOW, NOW + DAY], dtype=np.int64)
    span = tracker.delta_coin_span("BTC", cols, held, iv, mkt, s, at)
    assert span is not None
    # One price takes the 1-D kernel: the same floats as the span's grid, bit for bit (the
    # backtest's fast-forward and its full ticks must agree exactly).
    assert tracker.delta_coin("BTC", cols, held, iv, mkt) == span[1]
    for i in range(3):
        m = with_ivs(cols, iv, UnderlyingMarket("BTC", int(at[i]), float(s[i]), 0.55, 0.01, {}))
        marks_i = eq.option_marks_coin(cols, m, int(at[i]))
        e = coin_equity(accounts, lines, positions, float(s[i]), marks_i)
        assert span[i] == pytest.approx(e - spot_coin(lines, positions, set(accounts)), rel=1e-12)


def test_the_tracker_follows_the_accounts_read_and_the_columns() -> None:
    """The columns the tracker picks per underlying are kept between decisions: an account read
    later, or a new set of lines, must change what counts."""
    lines = {("a", PERP.symbol): PERP, ("b", PERP.symbol): PERP, ("b", SPOT.symbol): SPOT}
    positions = {("a", PERP.symbol): -100.0, ("b", PERP.symbol): 50.0, ("b", SPOT.symbol): 2.0}
    price = 50_000.0
    mkt = UnderlyingMarket("BTC", NOW, price, 0.55, 0.0, {})
    tracker = EquityTracker(lines, positions, lambda _: None, lambda: NOW)
    tracker.accounts["BTC"] = {"a": eq.CoinAccount(basis=1.0)}

    def delta(cols: Columns) -> float:
        held = cols.quantities(positions)
        return tracker.delta_coin("BTC", cols, held, np.full(len(cols.keys), np.nan), mkt)

    cols = Columns.of("BTC", lines)
    # less the inverse perp held in "a": -(-100 x 10 / P)
    assert delta(cols) == pytest.approx(1.0 + 1000.0 / price, rel=1e-12)
    tracker.accounts["BTC"]["b"] = eq.CoinAccount(basis=0.5)
    # "b" counts now: its basis, less its perp (-50 x 10 / P) and its spot (2 coin)
    assert delta(cols) == pytest.approx(1.5 + 1000.0 / price - 500.0 / price - 2.0, rel=1e-12)
    fewer = {k: i for k, i in lines.items() if i.kind is not Kind.SPOT}
    assert delta(Columns.of("BTC", fewer)) == pytest.approx(1.5 + 500.0 / price, rel=1e-12)
