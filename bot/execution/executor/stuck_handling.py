"""Stuck orders in the executor: the alerts (with backoff) while the venue cannot tell an order's
state, the faster polling when an alert is due, and an operator's resolution of one
(bookkeeping in bot/execution/stuck.py)."""

from __future__ import annotations

from bot.core.orders import OrderStatus
from bot.execution.executor.tracking import OrderTracking
from bot.execution.ledger import TrackedOrder


class StuckHandling(OrderTracking):
    def _note_stuck(self, order: TrackedOrder, why: str) -> None:
        alert = self.stuck.note(
            order, why, self.clock.now_ms(), self.cfg.stuck_alert_s, self.cfg.stuck_alert_max_s
        )
        if alert is not None:
            self._emit("alert", "order.stuck", **alert)

    def _poll_s(self, order: TrackedOrder, delay_s: float) -> float:
        """Wait `delay_s` before asking the venue again, less when a stuck alert is due."""
        s = self.stuck.orders.get(order.intent.client_id)
        if s is None:
            return delay_s
        return max(min(delay_s, (s.next_alert_ms - self.clock.now_ms()) / 1000.0), 0.01)

    def _unstick(self, order: TrackedOrder) -> None:
        s = self.stuck.clear(order.intent.client_id)
        if s is not None:
            self._emit(
                "state",
                "order.unstuck",
                client_id=order.intent.client_id,
                status=order.status.value,
                alerts=s.alerts,
                stuck_s=(self.clock.now_ms() - s.since_ms) / 1000.0,
            )

    def resolve(self, client_id: str, status: OrderStatus, by: str) -> TrackedOrder:
        """An operator's word on an order the venue cannot tell us about: it becomes final
        with `status`, counting only the fills booked so far (reconciliation then adopts the
        venue's position), and is journaled. Raises ValueError when not allowed."""
        order = self.ledger.orders.get(client_id)
        if order is None or order.request is None:
            raise ValueError(f"client_id {client_id!r} is not an order of this daemon")
        if order.settled:
            raise ValueError(f"order {client_id} is already settled ({order.status.value})")
        if client_id not in self.stuck.orders:
            raise ValueError(
                f"order {client_id} is not stuck (status {order.status.value}); only stuck "
                "orders (see stuck_orders in the state) can be resolved"
            )
        before = order.status
        order.venue_filled = order.booked
        self._finish(order, status, f"resolved by {by}")
        self._emit(
            "state",
            "order.resolved_by_operator",
            client_id=client_id,
            symbol=order.intent.symbol,
            underlying=order.intent.underlying,
            before=before.value,
            status=status.value,
            booked=order.booked,
            by=by,
        )
        return order
