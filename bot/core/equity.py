"""Coin equity: every coin of an underlying that our accounts hold, for the "usd" hedge view.

Pure: balances, instruments, positions and prices come in as arguments. Why: an account's USD
value is V = P x E, with E its equity in coin; dV/dP = E + sum of contract deltas (inverse
perps: qty x size / P; coin-settled options: premium-adjusted delta). Keeping the USD value flat
(Deribit's rule: equity + delta total = target) therefore needs E, and E is not in the position
lines: it is collateral, spot coin, premium received, realized and unrealized coin P&L.

E is kept per account as a *basis* (coin) plus the coin value of its coin-settled positions:
    E = basis - sum(inverse perps/futures: qty x size / P) + sum(coin options: qty x size x mark)
The basis moves only on cash flows (a balance read, our fills), not with the price: a fill of
`s` contracts of an inverse perp at p adds s x size / p (the coin paid at entry, or the coin
realized on a reduction, whichever it is), a coin-settled option fill pays s x size x p (p in
coin), a spot fill of the coin adds s x size, a fee in the coin subtracts it.

A balance read sets the basis again from the venue's total of the coin, read one of two ways:
- "wallet" (the simulated exchange, paper): the total is settled cash, without unrealized P&L
  or option value; the basis is the total plus the entry value (coin) of the inverse delta-one
  positions, tracked here from fills.
- "equity" (Deribit through ccxt: total = equity): the total is already marked to market; the
  basis is the total less the coin value of the positions at the read's price.
"""

from __future__ import annotations

from collections.abc import Hashable, Mapping
from dataclasses import dataclass, field
from typing import Literal, TypeVar

import numpy as np

from bot.core.book import Columns, LineKey
from bot.core.greeks import black_scholes, year_fractions
from bot.core.instruments import Instrument, Kind
from bot.core.market import UnderlyingMarket

BalanceBasis = Literal["wallet", "equity"]
K = TypeVar("K", bound=Hashable)  # a line: (account, symbol) in the book, a symbol in an account


def is_coin_settled(ins: Instrument) -> bool:
    """Inverse perps, futures and options of the coin: their value is coin of the account."""
    return ins.is_inverse and ins.kind is not Kind.SPOT


def fill_flow(ins: Instrument, signed: float, price: float, fee: float, fee_ccy: str) -> float:
    """Change of the basis (coin of `ins.underlying`) by one fill of `signed` contracts."""
    size = signed * ins.contract_size
    flow = 0.0
    if ins.kind is Kind.SPOT:
        flow = size
    elif ins.is_inverse and ins.kind is Kind.OPTION:
        flow = -size * price  # the premium, quoted in coin
    elif ins.is_inverse:
        flow = size / price
    if fee_ccy.upper() == ins.underlying.upper():
        flow -= fee
    return flow


def entry_cost(qty: float, cost: float, signed: float, price: float, size: float) -> float:
    """Entry value (coin, signed like the position) of an inverse delta-one position after a
    trade of `signed` contracts at `price`: a reduction removes its share at the average entry,
    the rest opens at `price` (the convention of the simulated exchange and of the venues)."""
    if qty * signed < 0:
        closing = -qty if abs(signed) >= abs(qty) else signed
        cost -= cost * (-closing / qty)
        qty += closing
        signed -= closing
        if abs(qty) < 1e-12:
            cost = 0.0
    return cost + signed * size / price


def option_marks_coin(cols: Columns, market: UnderlyingMarket, now_ms: int) -> dict[LineKey, float]:
    """Model price in coin of one contract of each coin-settled option line (the same
    Black-Scholes price the premium-adjusted delta subtracts, so E and the deltas agree)."""
    pick = cols.is_option & cols.is_inverse
    if not pick.any():
        return {}
    keys = [k for k, p in zip(cols.keys, pick, strict=True) if p]
    iv = np.array([market.option_iv.get(k, market.vol) for k in keys])
    t = year_fractions(cols.expiry_ms[pick], now_ms)
    g = black_scholes(market.index, cols.strike[pick], t, market.rate, iv, cols.is_call[pick])
    per = g.price / market.index * cols.contract_size[pick]
    return {k: float(v) for k, v in zip(keys, per, strict=True)}


def positions_value_coin(
    lines: Mapping[K, Instrument],
    positions: Mapping[K, float],
    price: float,
    marks: Mapping[K, float],
) -> float:
    """Coin value of coin-settled positions over the basis: -qty x size / P for inverse perps
    and futures, qty x mark for coin-settled options (`marks`: coin per contract)."""
    total = 0.0
    for key, ins in lines.items():
        qty = positions.get(key, 0.0)
        if qty == 0.0 or not is_coin_settled(ins):
            continue
        if ins.kind is Kind.OPTION:
            total += qty * marks.get(key, float("nan"))
        else:
            total -= qty * ins.contract_size / price
    return total


@dataclass(slots=True)
class CoinAccount:
    """One account's holding of one coin between balance reads."""

    basis: float = 0.0
    # inverse delta-one symbol -> (qty, entry cost in coin), as our fills built it
    entries: dict[str, tuple[float, float]] = field(default_factory=dict)

    def on_fill(
        self, ins: Instrument, signed: float, price: float, fee: float, fee_ccy: str
    ) -> None:
        self.basis += fill_flow(ins, signed, price, fee, fee_ccy)
        if is_coin_settled(ins) and ins.kind is not Kind.OPTION:
            qty, cost = self.entries.get(ins.symbol, (0.0, 0.0))
            cost = entry_cost(qty, cost, signed, price, ins.contract_size)
            self.entries[ins.symbol] = (qty + signed, cost)

    def on_read(
        self,
        total: float,
        basis: BalanceBasis,
        lines: Mapping[str, Instrument],
        positions: Mapping[str, float],
        price: float,
        marks: Mapping[str, float],
    ) -> None:
        """A venue balance read of the coin (`lines`, `positions`, `marks` by symbol, this
        account's coin-settled lines of the coin). A position our fills do not explain (adopted
        by reconciliation, or held at start) is taken as entered at `price`: its earlier P&L
        is in no number we can read."""
        for symbol, ins in lines.items():
            if not is_coin_settled(ins) or ins.kind is Kind.OPTION:
                continue
            qty = positions.get(symbol, 0.0)
            known = self.entries.get(symbol, (0.0, 0.0))
            if abs(known[0] - qty) > 1e-9:
                self.entries[symbol] = (qty, qty * ins.contract_size / price)
        if basis == "wallet":
            self.basis = total + sum(c for _, c in self.entries.values())
        else:
            self.basis = total - positions_value_coin(lines, positions, price, marks)
