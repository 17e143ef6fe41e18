"""The simulator's mutable record of one order, and the JSON forms of orders, fills and
instruments."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import BookLevel
from bot.core.orders import Fill, OrderRequest, OrderStatus, OrderUpdate, PositionReport, Side


class Refused(Exception):
    """A request refused without recording an order (a duplicate client id)."""


@dataclass(slots=True)
class Changes:
    """What one operation changed, for the streams."""

    orders: list[OrderUpdate] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    positions: list[PositionReport] = field(default_factory=list)

    def extend(self, other: Changes) -> None:
        self.orders.extend(other.orders)
        self.fills.extend(other.fills)
        self.positions.extend(other.positions)

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.positions)


@dataclass(slots=True)
class Part:
    """Matched quantity not yet delivered (a partial fill in progress)."""

    legs: tuple[BookLevel, ...]  # (price, amount) per book level
    maker: bool

    @property
    def amount(self) -> float:
        return round(sum(leg.amount for leg in self.legs), 12)


@dataclass(slots=True)
class SimOrder:
    request: OrderRequest
    venue_order_id: str
    ts_ms: int  # of the last change
    status: OrderStatus
    filled: float = 0.0
    notional: float = 0.0  # sum of amount x price over fills, for the average price
    resting: float = 0.0  # contracts waiting on the book at the limit price
    pending: list[Part] = field(default_factory=list)
    reason: str | None = None

    @property
    def is_open(self) -> bool:
        return not self.status.is_terminal

    @property
    def working(self) -> bool:
        """Whether a tick can still change the order: open, with parts to deliver or resting."""
        return self.is_open and (bool(self.pending) or self.resting > 0)

    def close(self, status: OrderStatus, reason: str, now_ms: int) -> OrderUpdate:
        """End the order (cancelled, rejected, expired): what rests or waits is dropped."""
        self.status = status
        self.reason = reason
        self.resting = 0.0
        self.pending = []
        self.ts_ms = now_ms
        return self.update()

    def refresh_status(self) -> None:
        if self.status.is_terminal:
            return
        if self.filled >= self.request.amount - 1e-12 and not self.pending and self.resting <= 0:
            self.status = OrderStatus.FILLED
        elif self.filled > 0:
            self.status = OrderStatus.PARTIALLY_FILLED
        else:
            self.status = OrderStatus.OPEN

    def update(self) -> OrderUpdate:
        r = self.request
        return OrderUpdate(
            client_id=r.client_id,
            symbol=r.symbol,
            side=r.side,
            amount=r.amount,
            filled=self.filled,
            status=self.status,
            ts_ms=self.ts_ms,
            price=r.price,
            average=self.notional / self.filled if self.filled > 0 else None,
            venue_order_id=self.venue_order_id,
            reason=self.reason,
        )

    def to_json(self) -> dict[str, Any]:
        r = self.request
        return {
            "request": {
                "client_id": r.client_id,
                "symbol": r.symbol,
                "side": r.side.value,
                "amount": r.amount,
                "price": r.price,
                "post_only": r.post_only,
                "reduce_only": r.reduce_only,
            },
            "venue_order_id": self.venue_order_id,
            "ts_ms": self.ts_ms,
            "status": self.status.value,
            "filled": self.filled,
            "notional": self.notional,
            "resting": self.resting,
            "pending": [
                {"maker": p.maker, "legs": [[x.price, x.amount] for x in p.legs]}
                for p in self.pending
            ],
            "reason": self.reason,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> SimOrder:
        r = d["request"]
        request = OrderRequest(
            client_id=r["client_id"],
            symbol=r["symbol"],
            side=Side(r["side"]),
            amount=r["amount"],
            price=r["price"],
            post_only=r["post_only"],
            reduce_only=r["reduce_only"],
        )
        return SimOrder(
            request=request,
            venue_order_id=d["venue_order_id"],
            ts_ms=d["ts_ms"],
            status=OrderStatus(d["status"]),
            filled=d["filled"],
            notional=d["notional"],
            resting=d["resting"],
            pending=[
                Part(legs=tuple(BookLevel(p, a) for p, a in x["legs"]), maker=x["maker"])
                for x in d["pending"]
            ],
            reason=d["reason"],
        )


def fill_to_json(f: Fill) -> dict[str, Any]:
    return {
        "client_id": f.client_id,
        "symbol": f.symbol,
        "side": f.side.value,
        "amount": f.amount,
        "price": f.price,
        "fee": f.fee,
        "fee_currency": f.fee_currency,
        "ts_ms": f.ts_ms,
        "trade_id": f.trade_id,
    }


def fill_from_json(d: dict[str, Any]) -> Fill:
    return Fill(
        client_id=d["client_id"],
        symbol=d["symbol"],
        side=Side(d["side"]),
        amount=d["amount"],
        price=d["price"],
        fee=d["fee"],
        fee_currency=d["fee_currency"],
        ts_ms=d["ts_ms"],
        trade_id=d["trade_id"],
    )


def instrument_to_json(inst: Instrument) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(inst).items()}


def instrument_from_json(d: Mapping[str, Any]) -> Instrument:
    d = dict(d)
    d["kind"] = Kind(d["kind"])
    d["settlement"] = Settlement(d["settlement"])
    if d.get("option_type") is not None:
        d["option_type"] = OptionType(d["option_type"])
    return Instrument(**d)
