"""What hedging cost, from the event stream: fees in USD and slippage against the mid at send.

Pure bookkeeping shared by the daemon's periodic `daemon.status` and the backtest's recorder.
Slippage is what a fill paid beyond the mid seen when its order was sent, as that share of the
fill's USD notional (positive: paid; negative: earned, e.g. a maker fill inside the spread).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.core.book import LineKey
from bot.core.instruments import Instrument

STABLE = frozenset({"USD", "USDT", "USDC", "DAI", "FDUSD"})


def usd_price(currency: str, index: Mapping[str, float]) -> float:
    if currency in STABLE:
        return 1.0
    return index.get(currency, 0.0)


class Costs:
    """Fees and slippage in USD, folded from order.sent / order.fill / order.done events."""

    def __init__(self, catalog: Mapping[LineKey, Instrument]) -> None:
        self.catalog = catalog
        self.fees_usd = 0.0
        self.slippage_usd = 0.0
        self._mid: dict[str, float] = {}  # client id -> mid when sent, until the order is done

    def on_event(self, name: str, d: Mapping[str, Any], index: Callable[[str], float]) -> None:
        """`index`: underlying -> its USD index now (prices a fee paid in coin)."""
        if name == "order.sent":
            self._mid[d["client_id"]] = d["mid"]
        elif name == "order.done":
            self._mid.pop(d["client_id"], None)
        elif name == "order.fill":
            underlying = d["symbol"].split("/")[0]
            fee_ccy = d["fee_currency"]
            self.fees_usd += d["fee"] * usd_price(fee_ccy, {fee_ccy: index(underlying)})
            mid = self._mid.get(d["client_id"])
            ins = self.catalog.get((d["account"], d["symbol"]))
            if mid and ins is not None:
                sign = 1.0 if d["side"] == "buy" else -1.0
                notional = ins.notional_usd(d["amount"], d["price"])
                self.slippage_usd += sign * (d["price"] - mid) / mid * notional


class Basis:
    """Delta-one derivative lines (perps, futures): contracts held and their entry cost at
    average cost (USD for linear, coin for inverse). It starts from the position held at the
    first valuation, priced then, and follows our fills; a reduction takes its share of the
    cost out, as venues move realized P&L into the balance."""

    def __init__(self) -> None:
        self.lines: dict[LineKey, tuple[float, float]] = {}  # key -> (contracts, cost)
        self.started = False  # after the first valuation, a new line starts flat

    def start(self, key: LineKey, ins: Instrument, qty: float, price: float) -> None:
        if key not in self.lines:
            self.lines[key] = (qty, _cost(ins, qty, price))

    def on_fill(self, key: LineKey, ins: Instrument, signed: float, price: float) -> None:
        if key not in self.lines:
            if not self.started:
                return  # the start position will include this fill
            self.lines[key] = (0.0, 0.0)
        qty, cost = self.lines[key]
        new = qty + signed
        if qty == 0.0 or (qty > 0) == (signed > 0):
            cost += _cost(ins, signed, price)
        elif abs(signed) <= abs(qty):
            cost *= new / qty
        else:  # through zero: what is left opened at this price
            cost = _cost(ins, new, price)
        self.lines[key] = (new, cost)


def _cost(ins: Instrument, qty: float, price: float) -> float:
    return qty * ins.contract_size / price if ins.is_inverse else qty * ins.contract_size * price


def value_usd(
    balances: Mapping[str, Mapping[str, float]],
    options: Mapping[LineKey, float],
    basis: Basis,
    catalog: Mapping[LineKey, Instrument],
    index: Mapping[str, float],
    marks: Mapping[LineKey, float],
) -> float:
    """What the accounts hold, in USD: every balance at its USD price (stablecoins 1, a coin at
    its underlying's index), option contracts at their mark (quote units: coin for coin-settled
    options), delta-one derivatives at their unrealized P&L against `basis`. Spot is in the
    balances. `options`: option line -> contracts; `marks`: line -> mark price."""
    total = sum(
        amount * usd_price(c, index) for held in balances.values() for c, amount in held.items()
    )
    for key, qty in options.items():
        ins = catalog[key]
        s = index.get(ins.underlying, 0.0)
        mark = marks.get(key, 0.0)
        total += qty * ins.contract_size * (mark * s if ins.is_inverse else mark)
    for key, (qty, cost) in basis.lines.items():
        ins = catalog[key]
        s = index.get(ins.underlying, 0.0)
        if s > 0:
            total += (
                (cost - _cost(ins, qty, s)) * s if ins.is_inverse else _cost(ins, qty, s) - cost
            )
    return total
