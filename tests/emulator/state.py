"""The emulated exchange's state: markets, books, orders, fills, positions, balances, faults.

Protocol modules (deribit.py, binance.py) translate requests into calls here and render the
results in their exchange's wire format. Amounts are in the venue's own units (Deribit inverse
futures: USD; Binance: coin).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any


def now_ms() -> int:
    return int(time.time() * 1000)


@dataclass
class Market:
    id: str  # venue instrument id: BTC-PERPETUAL, BTCUSDT
    base: str
    quote: str
    settle: str
    inverse: bool = False
    kind: str = "future"  # future | option | spot
    contract_size: float = 1.0
    tick: float = 0.1
    step: float = 0.001
    min_amount: float = 0.001
    taker_fee: float = 0.0005
    maker_fee: float = 0.0002
    expiry_ms: int | None = None
    strike: float | None = None
    option_type: str | None = None
    mark: float = 0.0
    index: float = 0.0
    iv: float | None = None  # fraction
    delta: float | None = None  # Black-Scholes, per coin
    funding_8h: float = 0.0001  # perps: the funding rate per 8 hours the venue states


@dataclass
class Order:
    id: str
    client_id: str
    symbol: str
    side: str  # buy | sell
    amount: float
    price: float
    reduce_only: bool = False
    post_only: bool = False
    filled: float = 0.0
    cost: float = 0.0
    status: str = "open"  # open | filled | cancelled | rejected
    created_ms: int = field(default_factory=now_ms)
    updated_ms: int = field(default_factory=now_ms)

    @property
    def average(self) -> float:
        return self.cost / self.filled if self.filled else 0.0


@dataclass
class Trade:
    id: str
    order: Order
    amount: float
    price: float
    fee: float
    fee_currency: str
    ts: int
    maker: bool = False


@dataclass
class Position:
    qty: float = 0.0
    entry: float = 0.0


@dataclass
class Faults:
    """Switches the tests flip. Each is consumed or checked by the server on the next request."""

    http_errors: list[int] = field(default_factory=list)  # statuses for the next requests
    hang_creates: int = 0  # accept the next N creates, never answer them
    mute_streams: bool = False  # sockets stay open, nothing is sent
    # the position stream alone goes silent (orders and trades still flow, market data too)
    mute_positions: bool = False
    stream_position: dict[str, float] = field(default_factory=dict)  # lie on the stream only

    def fail_next(self, status: int, n: int = 1) -> None:
        self.http_errors.extend([status] * n)


class RejectError(Exception):
    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


Listener = Callable[[str, Any], None]


class ExchangeState:
    def __init__(self, markets: list[Market], balances: dict[str, float]) -> None:
        self.markets = {m.id: m for m in markets}
        self.books: dict[str, dict[str, dict[float, float]]] = {
            m.id: {"bids": {}, "asks": {}} for m in markets
        }
        self.orders: dict[str, Order] = {}
        self.trades: list[Trade] = []
        self.positions: dict[str, Position] = {}
        self.balances = dict(balances)
        self.faults = Faults()
        self._ids = itertools.count(1000)
        self.listeners: list[Listener] = []  # (event, payload): "order", "trade", "position"
        self.requests: list[str] = []  # every HTTP path served, for assertions

    def next_id(self, prefix: str = "") -> str:
        return f"{prefix}{next(self._ids)}"

    def emit(self, event: str, payload: Any) -> None:
        for listener in list(self.listeners):
            listener(event, payload)

    # -- market data ------------------------------------------------------------------------

    def set_book(
        self, symbol: str, bids: list[tuple[float, float]], asks: list[tuple[float, float]]
    ) -> None:
        self.books[symbol] = {"bids": dict(bids), "asks": dict(asks)}
        market = self.markets[symbol]
        if bids and asks:
            mid = (max(dict(bids)) + min(dict(asks))) / 2
            if market.kind != "option":
                market.mark = market.index = mid
        self._match_resting(symbol)

    def levels(self, symbol: str, side: str, depth: int = 20) -> list[tuple[float, float]]:
        book = self.books[symbol][side]
        prices = sorted(book, reverse=side == "bids")[:depth]
        return [(p, book[p]) for p in prices if book[p] > 0]

    def best(self, symbol: str, side: str) -> tuple[float, float] | None:
        levels = self.levels(symbol, side, 1)
        return levels[0] if levels else None

    # -- orders -----------------------------------------------------------------------------

    def find_by_client_id(self, client_id: str) -> list[Order]:
        return [o for o in self.orders.values() if o.client_id == client_id]

    def place(
        self,
        symbol: str,
        side: str,
        amount: float,
        price: float,
        client_id: str,
        *,
        reduce_only: bool = False,
        post_only: bool = False,
        unique_client_id: bool = True,
    ) -> Order:
        market = self.markets.get(symbol)
        if market is None:
            raise RejectError("bad_symbol", f"unknown instrument {symbol}")
        if amount < market.min_amount or amount <= 0:
            raise RejectError("bad_amount", f"amount {amount} below minimum {market.min_amount}")
        if unique_client_id and client_id and self.find_by_client_id(client_id):
            raise RejectError("duplicate", f"client order id {client_id} is duplicated")
        pos = self.positions.get(symbol, Position()).qty
        if reduce_only:
            sign = 1 if side == "buy" else -1
            if pos * sign >= 0:
                raise RejectError("reduce_only", "reduce-only order would increase the position")
            amount = min(amount, abs(pos))
        crosses = self._crosses(symbol, side, price)
        if post_only and crosses:
            raise RejectError("post_only", "post-only order would take liquidity")
        order = Order(
            id=self.next_id(),
            client_id=client_id,
            symbol=symbol,
            side=side,
            amount=amount,
            price=price,
            reduce_only=reduce_only,
            post_only=post_only,
        )
        self.orders[order.id] = order
        self.emit("order", order)
        self._match(order)
        return order

    def cancel(self, order_id: str) -> Order:
        order = self.orders.get(order_id)
        if order is None:
            raise RejectError("not_found", f"order {order_id} not found")
        if order.status != "open":
            raise RejectError("not_open", f"order {order_id} is {order.status}")
        order.status = "cancelled"
        order.updated_ms = now_ms()
        self.emit("order", order)
        return order

    def _crosses(self, symbol: str, side: str, price: float) -> bool:
        opposite = self.best(symbol, "asks" if side == "buy" else "bids")
        if opposite is None:
            return False
        return price >= opposite[0] if side == "buy" else price <= opposite[0]

    def _match_resting(self, symbol: str) -> None:
        for order in list(self.orders.values()):
            if order.symbol == symbol and order.status == "open":
                self._match(order, maker=True)

    def _match(self, order: Order, maker: bool = False) -> None:
        book_side = "asks" if order.side == "buy" else "bids"
        market = self.markets[order.symbol]
        while order.status == "open" and order.filled < order.amount - 1e-12:
            best = self.best(order.symbol, book_side)
            if best is None or not self._crosses(order.symbol, order.side, order.price):
                break
            price, available = best
            qty = min(available, order.amount - order.filled)
            self.books[order.symbol][book_side][price] = available - qty
            if self.books[order.symbol][book_side][price] <= 1e-12:
                del self.books[order.symbol][book_side][price]
            fill_price = order.price if maker else price
            self._fill(order, market, qty, fill_price, maker)

    def _fill(self, order: Order, market: Market, qty: float, price: float, maker: bool) -> None:
        rate = market.maker_fee if maker else market.taker_fee
        if market.inverse:
            fee, fee_ccy = qty / price * rate, market.settle
        else:
            fee, fee_ccy = qty * market.contract_size * price * rate, market.settle
        order.filled += qty
        order.cost += qty * price
        order.updated_ms = now_ms()
        if order.filled >= order.amount - 1e-12:
            order.status = "filled"
        trade = Trade(self.next_id("T"), order, qty, price, fee, fee_ccy, now_ms(), maker)
        self.trades.append(trade)
        self.balances[fee_ccy] = self.balances.get(fee_ccy, 0.0) - fee
        pos = self.positions.setdefault(order.symbol, Position())
        signed = qty if order.side == "buy" else -qty
        if pos.qty == 0 or (pos.qty > 0) == (signed > 0):
            total = abs(pos.qty) + qty
            pos.entry = (pos.entry * abs(pos.qty) + price * qty) / total
        pos.qty = round(pos.qty + signed, 10)
        if pos.qty == 0:
            pos.entry = 0.0
        self.emit("trade", trade)
        self.emit("order", order)
        self.emit("position", order.symbol)

    def set_position(self, symbol: str, qty: float, entry: float = 0.0) -> None:
        self.positions[symbol] = Position(qty, entry or self.markets[symbol].mark)
        self.emit("position", symbol)
