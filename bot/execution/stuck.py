"""Stuck orders: orders the executor cannot bring to a final state (the venue does not answer
for them, or a cancel never lands). Each one keeps its underlying blocked (it may still fill),
is alerted on again and again with growing gaps, is listed in the state document and the metrics,
and ends when the venue finally answers or an operator resolves it (`resolve-order`).

Pure bookkeeping: the executor calls `note` from its follow-up loops with the clock's now.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from bot.execution.ledger import TrackedOrder


@dataclass(slots=True)
class Stuck:
    order: TrackedOrder
    why: str
    since_ms: int
    alerts: int = 0
    next_alert_ms: int = 0
    gap_s: float = 0.0

    def as_dict(self, now_ms: int) -> dict[str, Any]:
        o = self.order
        return {
            "client_id": o.intent.client_id,
            "account": o.account,
            "underlying": o.intent.underlying,
            "symbol": o.intent.symbol,
            "side": o.intent.side.value,
            "amount": o.intent.amount,
            "status": o.status.value,
            "filled": o.booked,
            "why": self.why,
            "since_ms": self.since_ms,
            "age_s": (now_ms - self.since_ms) / 1000.0,
            "alerts": self.alerts,
        }


@dataclass(slots=True)
class StuckOrders:
    orders: dict[str, Stuck] = field(default_factory=dict)

    def note(
        self, order: TrackedOrder, why: str, now_ms: int, first_gap_s: float, max_gap_s: float
    ) -> dict[str, Any] | None:
        """Record that `order` is stuck; the data of an alert when one is due now (the first
        at once, then after first_gap_s, doubling up to max_gap_s), else None."""
        cid = order.intent.client_id
        s = self.orders.get(cid)
        if s is None:
            s = self.orders[cid] = Stuck(order, why, now_ms, gap_s=first_gap_s)
        s.why = why
        if now_ms < s.next_alert_ms:
            return None
        s.alerts += 1
        gap = min(s.gap_s, max_gap_s)
        s.next_alert_ms = now_ms + int(gap * 1000)
        s.gap_s = min(gap * 2, max_gap_s)
        return {**s.as_dict(now_ms), "next_alert_s": gap}

    def clear(self, client_id: str) -> Stuck | None:
        return self.orders.pop(client_id, None)

    def listing(self, now_ms: int) -> list[dict[str, Any]]:
        return [s.as_dict(now_ms) for s in self.orders.values()]
