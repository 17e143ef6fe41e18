"""How an order's follow-up ends: done (reported, then handed to its parent algorithm or, once
settled, to the policy), or cut short by a surprise in one of its steps (`_guarded`), which is
logged and never kills the daemon. Either way its timers stop and it leaves the works."""

from __future__ import annotations

from collections.abc import Callable

from bot.execution.executor.commands import Step
from bot.execution.executor.stuck_handling import StuckHandling
from bot.execution.executor.tracking import log
from bot.execution.executor.work import OrderWork
from bot.execution.ledger import TrackedOrder


class Endings(StuckHandling):
    def _done(self, work: OrderWork) -> Step:
        """The follow-up is over: report it, then hand the order to its parent, or let the
        policy look again once it is settled."""
        order = self._drop(work)
        if work.parent is not None:
            return self._child_done(work.parent, order)
        if order.settled and self.on_settled is not None:
            self.on_settled(order)
        return []

    def _drop(self, work: OrderWork) -> TrackedOrder:
        order = work.order
        self._stop_timer(work)
        if work.wake is not None:
            work.wake.cancel()
            work.wake = None
        self._works.pop(order.intent.client_id, None)
        if work.announce:
            self._emit(
                "order",
                "order.done",
                client_id=order.intent.client_id,
                symbol=order.intent.symbol,
                status=order.status.value,
                filled=order.booked,
                reason=order.reason,
            )
        self._check_idle()
        return order

    def _child_done(self, parent: str, child: TrackedOrder) -> Step:
        """A child of a parent algorithm is done (algorithms.py)."""
        raise NotImplementedError

    def _parent_failed(self, parent: str) -> Step:
        """A child's follow-up failed: its parent ends with what filled (algorithms.py)."""
        raise NotImplementedError

    def _check_idle(self) -> None:
        if not self._works and not self._parents:
            self._on_idle()

    def _guarded(self, work: OrderWork, step: Callable[[], Step]) -> Step:
        """Run one step of an order's follow-up; never let one order's surprise kill the
        daemon: it is logged and the follow-up ends there."""
        try:
            return step()
        except Exception as e:
            log.exception("order.work_failed", client_id=work.order.intent.client_id, error=repr(e))
            if work.order.intent.client_id not in self._works:
                return []
            self._drop(work)
            if work.parent is not None:
                return self._parent_failed(work.parent)
            return []

    def _stop_timer(self, work: OrderWork) -> None:
        if work.timer is not None:
            work.timer.cancel()
            work.timer = None
