"""Orders as values: what we intend, what we send, what the venue says back."""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum, StrEnum


class Side(StrEnum):
    BUY = "buy"
    SELL = "sell"

    @property
    def sign(self) -> int:
        return 1 if self is Side.BUY else -1

    @staticmethod
    def of(qty: float) -> Side:
        return Side.BUY if qty > 0 else Side.SELL


class OrderStatus(StrEnum):
    CREATED = "created"  # journaled, not yet sent
    SENT = "sent"  # handed to the venue, no answer yet (ambiguous if it fails now)
    OPEN = "open"  # acknowledged by the venue
    PARTIALLY_FILLED = "partially_filled"
    FILLED = "filled"
    CANCELLED = "cancelled"
    REJECTED = "rejected"
    EXPIRED = "expired"

    @property
    def is_terminal(self) -> bool:
        return self in _TERMINAL


_TERMINAL = frozenset(
    {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED, OrderStatus.EXPIRED}
)


@dataclass(frozen=True, slots=True)
class OrderIntent:
    """One decision to trade. Its client_id is fixed once and reused by every retry."""

    client_id: str
    underlying: str
    symbol: str
    side: Side
    amount: float  # contracts, > 0
    reason: str
    reduce_only: bool = False

    def fields(self) -> dict[str, object]:
        """What a refusal or rejection event says of the order."""
        return {
            "client_id": self.client_id,
            "underlying": self.underlying,
            "symbol": self.symbol,
            "side": self.side.value,
            "amount": self.amount,
        }


@dataclass(frozen=True, slots=True)
class OrderRequest:
    """What goes to the venue: a limit order (marketable or post-only)."""

    client_id: str
    symbol: str
    side: Side
    amount: float
    price: float
    post_only: bool = False
    reduce_only: bool = False


@dataclass(frozen=True, slots=True)
class Fill:
    client_id: str
    symbol: str
    side: Side
    amount: float  # contracts, > 0
    price: float
    fee: float  # in fee_currency
    fee_currency: str
    ts_ms: int
    trade_id: str

    @property
    def signed_amount(self) -> float:
        return self.amount * self.side.sign

    def problem(self) -> str | None:
        """Why this fill cannot be booked, or None."""
        if not (math.isfinite(self.amount) and self.amount > 0):
            return f"amount is {self.amount}"
        if not (math.isfinite(self.price) and self.price > 0):
            return f"price is {self.price}"
        if not math.isfinite(self.fee):
            return f"fee is {self.fee}"
        return None


def same_trade(client_a: str, client_b: str) -> bool:
    """Two fills with one trade id (account and symbol alike) are the same trade unless both
    name an order and the orders differ: a venue that reuses trade ids (a testnet after a
    reset, a paper account started afresh) then hands out a new trade under an old id. A fill
    that names no order is taken for the one seen, never booked twice."""
    return not client_a or not client_b or client_a == client_b


class FillRecord(Enum):
    """What Journal.record_fill did with a fill: only KNOWN is false."""

    NEW = "new"
    REUSED = "reused"  # a trade id the venue had given to another order's fill
    KNOWN = "known"

    def __bool__(self) -> bool:
        return self is not FillRecord.KNOWN


@dataclass(frozen=True, slots=True)
class OrderUpdate:
    """The venue's view of one order at one time."""

    client_id: str
    symbol: str
    side: Side
    amount: float
    filled: float
    status: OrderStatus
    ts_ms: int
    price: float | None = None
    average: float | None = None
    venue_order_id: str | None = None
    reason: str | None = None  # why rejected or cancelled, when known

    @property
    def remaining(self) -> float:
        return 0.0 if self.status.is_terminal else max(self.amount - self.filled, 0.0)


@dataclass(frozen=True, slots=True)
class PositionReport:
    """A venue's (or an external source's) statement of a position, in contracts."""

    symbol: str
    qty: float
    ts_ms: int
    source: str = "venue"
