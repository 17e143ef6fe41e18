"""Fees, slippage and the account value behind `daemon.status` (bot/core/pnl.py)."""

from __future__ import annotations

import pytest

from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.pnl import Basis, Costs, usd_price, value_usd

PERP = Instrument("BTC/USDT:USDT", "BTC", Kind.PERP, amount_step=0.001, price_step=0.1)
INV = Instrument("BTC/USD:BTC", "BTC", Kind.PERP, Settlement.INVERSE, contract_size=10.0)
CALL = Instrument(
    "BTC/USD:BTC-C",
    "BTC",
    Kind.OPTION,
    Settlement.INVERSE,
    expiry_ms=1,
    strike=60_000.0,
    option_type=OptionType.CALL,
)
CATALOG = {("a", PERP.symbol): PERP, ("a", INV.symbol): INV, ("a", CALL.symbol): CALL}


def _fill(cid: str, side: str, amount: float, price: float, fee: float, ccy: str) -> dict:
    return {
        "client_id": cid,
        "account": "a",
        "symbol": PERP.symbol,
        "side": side,
        "amount": amount,
        "price": price,
        "fee": fee,
        "fee_currency": ccy,
    }


def test_costs_fees_in_usd_and_slippage_against_mid_at_send() -> None:
    c = Costs(CATALOG)
    index = {"BTC": 50_000.0}.__getitem__
    c.on_event("order.sent", {"client_id": "x", "mid": 50_000.0}, index)
    c.on_event("order.fill", _fill("x", "buy", 2.0, 50_010.0, 10.0, "USDT"), index)
    c.on_event("order.fill", _fill("x", "buy", 1.0, 50_000.0, 0.0001, "BTC"), index)
    assert c.fees_usd == pytest.approx(10.0 + 5.0)
    # paid 10 over mid on 2 BTC: 2e-4 of 100,020 USD notional
    assert c.slippage_usd == pytest.approx(10.0 / 50_000.0 * 2 * 50_010.0)
    c.on_event("order.done", {"client_id": "x"}, index)
    c.on_event("order.fill", _fill("x", "sell", 1.0, 40_000.0, 0.0, "USDT"), index)
    assert c.slippage_usd == pytest.approx(20.004)  # no mid after done: not counted


def test_usd_price() -> None:
    assert usd_price("USDC", {}) == 1.0
    assert usd_price("ETH", {"ETH": 3000.0}) == 3000.0
    assert usd_price("SOL", {}) == 0.0


def test_linear_basis_average_cost_and_realized_into_balance() -> None:
    b = Basis()
    key = ("a", PERP.symbol)
    b.start(key, PERP, 1.0, 100.0)
    b.started = True
    b.on_fill(key, PERP, 1.0, 110.0)  # adds: average cost 105
    assert b.lines[key] == (2.0, 210.0)
    b.on_fill(key, PERP, -1.0, 120.0)  # reduces: half the cost leaves, realized at the venue
    assert b.lines[key] == (1.0, 105.0)
    b.on_fill(key, PERP, -3.0, 130.0)  # through zero: the rest opened at 130
    assert b.lines[key] == (-2.0, -260.0)
    # short 2 from 130, now 120: +20 unrealized; balances 1000 USDT
    v = value_usd({"a": {"USDT": 1000.0}}, {}, b, CATALOG, {"BTC": 120.0}, {})
    assert v == pytest.approx(1020.0)


def test_new_line_after_start_starts_flat_and_fills_before_start_are_ignored() -> None:
    b = Basis()
    key = ("a", PERP.symbol)
    b.on_fill(key, PERP, 1.0, 100.0)
    assert key not in b.lines  # the first valuation's position includes it
    b.started = True
    b.on_fill(key, PERP, 1.0, 100.0)
    assert b.lines[key] == (1.0, 100.0)


def test_value_inverse_perp_and_coin_option() -> None:
    b = Basis()
    key = ("a", INV.symbol)
    b.start(key, INV, 100.0, 50_000.0)  # 1000 USD long: 0.02 BTC at entry
    balances = {"a": {"BTC": 1.0, "USDT": 0.0}}
    options = {("a", CALL.symbol): -2.0}
    marks = {("a", CALL.symbol): 0.05}  # coin
    at_start = value_usd(balances, options, b, CATALOG, {"BTC": 50_000.0}, marks)
    assert at_start == pytest.approx(50_000.0 - 2 * 0.05 * 50_000.0)
    later = value_usd(balances, options, b, CATALOG, {"BTC": 40_000.0}, marks)
    # the inverse perp lost 1000 USD x (1 - 40/50) = 200 USD
    perp_pnl = (0.02 - 1000 / 40_000.0) * 40_000.0
    assert perp_pnl == pytest.approx(-200.0)
    assert later == pytest.approx(40_000.0 - 2 * 0.05 * 40_000.0 + perp_pnl)
