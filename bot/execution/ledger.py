"""The ledger: our positions and every order we sent, as the executor knows them.

Positions move only on booked fills (each trade id once) and on reconciliation with the venue.
An order counts as in flight until it is settled: terminal at the venue AND every fill the venue
reported for it booked here. Counting an order until its fills are booked closes the window in
which an order update says "filled" before the fill (and the position) has arrived: without it
the delta would briefly miss the fill and the policy would hedge the same drift twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

from bot.core.orders import (
    Fill,
    OrderIntent,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    same_trade,
)

Key = tuple[str, str]  # (account, symbol)


@dataclass(slots=True)
class TrackedOrder:
    account: str
    intent: OrderIntent
    request: OrderRequest | None
    status: OrderStatus = OrderStatus.CREATED
    venue_filled: float = 0.0  # what the venue says has filled
    booked: float = 0.0  # what we have booked from fills
    fees: float = 0.0
    venue_order_id: str | None = None
    reason: str | None = None
    created_ms: int = 0
    updated_ms: int = 0

    @property
    def key(self) -> Key:
        return (self.account, self.intent.symbol)

    @property
    def expected_fill(self) -> float:
        """What may still fill in total: the whole amount until terminal, then what filled."""
        return self.venue_filled if self.status.is_terminal else self.intent.amount

    @property
    def settled(self) -> bool:
        return self.status.is_terminal and self.booked >= self.venue_filled - 1e-12

    @property
    def unbooked(self) -> float:
        """Signed contracts that may still reach our position through this order."""
        if self.settled:
            return 0.0
        return max(self.expected_fill - self.booked, 0.0) * self.intent.side.sign


@dataclass(slots=True)
class Ledger:
    positions: dict[Key, float] = field(default_factory=dict)
    orders: dict[str, TrackedOrder] = field(default_factory=dict)
    # (account, symbol, trade id) -> the client ids booked under it (see same_trade)
    _trade_ids: dict[tuple[str, str, str], set[str]] = field(default_factory=dict)
    last_fill_ms: dict[Key, int] = field(default_factory=dict)
    fills_count: int = 0
    fees_paid: dict[str, float] = field(default_factory=dict)
    version: int = 0  # bumped whenever a position moves, so views can keep arrays of them
    # Settled orders beyond this many are forgotten (oldest first; the journal holds them), so
    # a long run's memory and the walks over unsettled orders stay bounded.
    history: int = 1000
    forgotten_filled: int = 0  # forgotten orders that had fills booked
    # Every unsettled order, and maybe some settled since (dropped lazily on the next walk), so
    # in-flight walks cost the orders still working, not the whole history. An order becomes
    # unsettled only when opened or when a terminal update raises its fill past what is booked.
    _live: dict[str, TrackedOrder] = field(default_factory=dict)

    def open(
        self, account: str, intent: OrderIntent, request: OrderRequest | None, now_ms: int
    ) -> TrackedOrder:
        if intent.client_id in self.orders:
            raise ValueError(f"client id {intent.client_id} already used")
        order = TrackedOrder(account, intent, request, created_ms=now_ms, updated_ms=now_ms)
        self.orders[intent.client_id] = order
        self._live[intent.client_id] = order
        if len(self.orders) > 2 * self.history:
            self._forget()
        return order

    def _forget(self) -> None:
        """Drop the oldest settled orders beyond `history` (amortized: once it has doubled)."""
        settled = [c for c, o in self.orders.items() if o.settled]
        drop = settled[: max(len(settled) - self.history, 0)]
        for c in drop:
            self.forgotten_filled += self.orders.pop(c).booked > 0

    def apply_update(self, update: OrderUpdate) -> TrackedOrder | None:
        """Apply a venue update to a known order; None when the client id is not ours."""
        order = self.orders.get(update.client_id)
        if order is None:
            return None
        # A terminal order stays terminal; stale non-terminal updates arriving late are ignored.
        if order.status.is_terminal and not update.status.is_terminal:
            return order
        order.status = update.status
        order.venue_filled = max(order.venue_filled, update.filled)
        order.venue_order_id = update.venue_order_id or order.venue_order_id
        order.reason = update.reason or order.reason
        order.updated_ms = max(order.updated_ms, update.ts_ms)
        if not order.settled:
            self._live[update.client_id] = order
        return order

    def mark(self, client_id: str, status: OrderStatus, now_ms: int, reason: str | None) -> None:
        order = self.orders[client_id]
        if order.status.is_terminal:
            return
        order.status = status
        order.reason = reason
        order.updated_ms = now_ms

    def book_fill(self, account: str, fill: Fill, *, known: bool = False) -> bool:
        """Book a fill once (by trade id); returns False when it was already booked.

        `known`: the journal booked this trade id in an earlier run. Its effect is already in
        the venue's position that reconciliation adopts, so only the order's progress is
        credited (it can settle) and the position is left alone; returns False."""
        tid = (account, fill.symbol, fill.trade_id)
        owners = self._trade_ids.setdefault(tid, set())
        if any(same_trade(c, fill.client_id) for c in owners):
            return False
        owners.add(fill.client_id)
        if known:
            order = self.orders.get(fill.client_id)
            if order is not None:
                order.booked += fill.amount
                order.venue_filled = max(order.venue_filled, order.booked)
            return False
        key = (account, fill.symbol)
        self.positions[key] = self.positions.get(key, 0.0) + fill.signed_amount
        self.version += 1
        self.last_fill_ms[key] = max(self.last_fill_ms.get(key, 0), fill.ts_ms)
        self.fills_count += 1
        self.fees_paid[fill.fee_currency] = self.fees_paid.get(fill.fee_currency, 0.0) + fill.fee
        order = self.orders.get(fill.client_id)
        if order is not None:
            order.booked += fill.amount
            order.fees += fill.fee
            order.venue_filled = max(order.venue_filled, order.booked)
        return True

    def in_flight(self) -> dict[Key, float]:
        out: dict[Key, float] = {}
        for order in self.unsettled():
            u = order.unbooked
            if u != 0.0:
                out[order.key] = out.get(order.key, 0.0) + u
        return out

    def unsettled(self) -> Iterator[TrackedOrder]:
        """The unsettled orders, oldest first."""
        gone = [
            c for c, o in self._live.items() if o.settled or self.orders.get(c) is not o
        ]  # settled since, or removed from the ledger (a worked parent, a test's reset)
        for c in gone:
            del self._live[c]
        return iter(list(self._live.values()))

    def has_unsettled(self, underlying: str) -> bool:
        return any(o.intent.underlying == underlying for o in self.unsettled())

    def adopt_position(self, key: Key, qty: float) -> float:
        """Adopt the venue's position (reconciliation); returns the difference it made."""
        before = self.positions.get(key, 0.0)
        self.positions[key] = qty
        self.version += 1
        return qty - before
