"""Taker placement as a synchronous state machine: send one registered order once and follow it
until it is settled. An ambiguous create is resolved by looking the order up by client id (never
re-sent); an order still open after its wait is cancelled; fills the stream did not deliver are
fetched. Orders recovered after a restart are followed the same way (`adopt`).

Each event method (the driver's answers, the order's changes, the clock's timers) advances the
order's `OrderWork` and returns the commands to carry out next; waits are timers on the Clock."""

from __future__ import annotations

from collections.abc import Sequence

from bot.core.orders import Fill, OrderStatus, OrderUpdate
from bot.execution import pricing
from bot.execution.executor.commands import Cancel, FetchFills, LookUp, Send, Step
from bot.execution.executor.endings import Endings
from bot.execution.executor.tracking import log
from bot.execution.executor.work import WAITS, OrderWork, Phase
from bot.execution.ledger import TrackedOrder
from bot.venues.base import VenueAmbiguous, VenueError, VenueRejected, VenueTransient


class Placement(Endings):
    # ---- starting ---------------------------------------------------------------------------

    def _place(
        self,
        order: TrackedOrder,
        mid: float,
        wait_s: float,
        *,
        cost: pricing.Cost | None = None,
        report_outcome: bool = True,
        parent: str | None = None,
    ) -> Step:
        """Send one registered order; it is then followed until it is settled (or a bounded
        wait gave up, which leaves it in flight and alerts)."""
        assert order.request is not None
        work = OrderWork(order, wait_s, report_outcome, parent=parent)
        self._works[order.intent.client_id] = work
        return self._guarded(work, lambda: self._send(work, mid, cost))

    def _send(self, work: OrderWork, mid: float, cost: pricing.Cost | None) -> Step:
        order = work.order
        assert order.request is not None
        self._mark_sent(order, mid, cost)
        work.phase = Phase.CREATE
        return [Send(order.account, order.request)]

    def adopt(self, order: TrackedOrder, *, look_up: bool = False) -> None:
        """Keep working an order recovered from the journal that is still open at the venue:
        wait (bounded), cancel on timeout, book its fills, then let the policy look again.
        `look_up`: the venue did not show it yet; look it up until lookup_grace_s has passed
        since it was sent (see _look_up_answered) before anything else."""
        work = OrderWork(order, self.cfg.order_timeout_s, report_outcome=False, announce=False)
        self._works[order.intent.client_id] = work
        if look_up:
            self._out(self._guarded(work, lambda: self._start_lookups(work)))
        else:
            self._out(self._guarded(work, lambda: self._wait(work, Phase.WORKING, work.wait_s)))

    def _mark_sent(self, order: TrackedOrder, mid: float, cost: pricing.Cost | None) -> None:
        """Report, count and journal the send, just before the create goes out."""
        intent, request = order.intent, order.request
        assert request is not None
        self._emit(
            "order",
            "order.sent",
            account=order.account,
            client_id=intent.client_id,
            underlying=intent.underlying,
            symbol=intent.symbol,
            side=intent.side.value,
            amount=intent.amount,
            price=request.price,
            post_only=request.post_only,
            mid=mid,
            max_slippage_bps=self.cfg.for_symbol(intent.symbol).max_slippage_bps,
            reduce_only=request.reduce_only,
            **({"expected_" + k: v for k, v in cost.as_dict().items()} if cost else {}),
        )
        self.orders_sent += 1
        order.status = OrderStatus.SENT
        if self.journal is not None:
            self.journal.mark_sent(request, self.clock.now_ms())

    # ---- events -----------------------------------------------------------------------------

    def on_create_result(
        self, client_id: str, update: OrderUpdate | None, error: Exception | None
    ) -> Step:
        """The create's answer: the order's state, or the error it failed with."""
        work = self._works.get(client_id)
        if work is None or work.phase is not Phase.CREATE:
            return []
        return self._guarded(work, lambda: self._created(work, update, error))

    def on_lookup_result(
        self, client_id: str, found: OrderUpdate | None, error: Exception | None
    ) -> Step:
        """A lookup's answer: the order's state, None (not found), or the error."""
        work = self._works.get(client_id)
        if work is None:
            return []
        if work.phase is Phase.LOOKUP:
            return self._guarded(work, lambda: self._look_up_answered(work, found, error))
        if work.phase in (Phase.REFRESH, Phase.STUCK_REFRESH):
            return self._guarded(work, lambda: self._refreshed(work, found, error))
        return []

    def on_cancel_result(
        self, client_id: str, update: OrderUpdate | None, error: Exception | None
    ) -> Step:
        work = self._works.get(client_id)
        if work is None or work.phase not in (Phase.CANCEL, Phase.STUCK_CANCEL):
            return []
        return self._guarded(work, lambda: self._cancelled(work, update, error))

    def on_fetch_fills_result(
        self, client_id: str, fills: Sequence[Fill] | None, error: Exception | None
    ) -> Step:
        work = self._works.get(client_id)
        if work is None or work.phase is not Phase.FETCH:
            return []
        return self._guarded(work, lambda: self._fetched(work, fills, error))

    def _on_timer(self, client_id: str, timer: object) -> Step:
        """The current wait of the order ended (its timer fired)."""
        work = self._works.get(client_id)
        if work is None or work.timer is not timer or work.phase not in WAITS:
            return []
        work.timer = None
        return self._guarded(work, lambda: self._wait_checked(work))

    def _wake(self, client_id: str) -> None:
        # Looked at on the clock's next turn, not inside the caller's update: the stream
        # handler finishes its own bookkeeping (positions, equity) before the policy hears.
        work = self._works.get(client_id)
        if work is None or work.phase not in WAITS or work.wake is not None:
            return
        work.wake = self.clock.call_at(
            self.clock.now_ms(), lambda: self._out(self._on_wake(client_id))
        )

    def _on_wake(self, client_id: str) -> Step:
        work = self._works.get(client_id)
        if work is None:
            return []
        work.wake = None
        if work.phase not in WAITS or not self._ready(work):
            return []
        self._stop_timer(work)
        return self._guarded(work, lambda: self._waited(work, True))

    # ---- the create and its resolution ------------------------------------------------------

    def _created(
        self, work: OrderWork, update: OrderUpdate | None, error: Exception | None
    ) -> Step:
        order = work.order
        if error is None:
            assert update is not None
            self.on_update(order.account, update)
            return self._accepted(work)
        if isinstance(error, VenueRejected):
            self._finish(order, OrderStatus.REJECTED, str(error))
            if work.report_outcome:
                self._outcome(order, False)
            return self._done(work)
        if not isinstance(error, VenueAmbiguous | VenueTransient | TimeoutError):
            raise error
        self._emit("alert", "order.ambiguous", client_id=order.intent.client_id, error=repr(error))
        return self._start_lookups(work)

    def _accepted(self, work: OrderWork) -> Step:
        if work.report_outcome:
            self._outcome(work.order, work.order.status is not OrderStatus.REJECTED)
        return self._wait(work, Phase.WORKING, work.wait_s)

    def _start_lookups(self, work: OrderWork) -> Step:
        """Find out by client id whether a create reached the venue (ambiguous create, or an
        intent recovery did not find yet): at least one lookup, even when a stream update came
        first."""
        work.lookups_until_ms = self.clock.now_ms() + int(self.cfg.order_timeout_s * 1000)
        work.delay_s = 0.2
        work.told_pending = False
        return self._ask(work, Phase.LOOKUP)

    def _look_up_answered(
        self, work: OrderWork, found: OrderUpdate | None, error: Exception | None
    ) -> Step:
        """ "Not found" is believed only from the latest lookup and only once `lookup_grace_s`
        has passed since the send: venues take time to show new orders, and until then the
        order stays in flight (in delta, blocking its underlying). Lookups that fail past
        `order_timeout_s` make it a stuck order (alerts with backoff) until the venue answers
        or an operator resolves it."""
        order = work.order
        cid, symbol = order.intent.client_id, order.intent.symbol
        not_found = False
        if error is not None:
            self._venue_error(error)
            log.warning("order.lookup_failed", client_id=cid, error=repr(error))
        elif found is not None:
            self._emit("order", "order.resolved", client_id=cid, status=found.status.value)
            self.on_update(order.account, found)
            return self._lookups_done(work)
        else:
            not_found = True
        if order.status is not OrderStatus.SENT:
            return self._lookups_done(work)  # a stream update or an operator answered meanwhile
        now = self.clock.now_ms()
        grace_end = order.created_ms + int(self.cfg.lookup_grace_s * 1000)
        if not_found and now >= grace_end:
            # Still unseen after the whole grace: it never arrived. The order stays in the
            # ledger as rejected, so a late fill is still booked.
            self._finish(order, OrderStatus.REJECTED, "not found within lookup_grace_s")
            return self._lookups_done(work)
        if not_found and not work.told_pending:
            work.told_pending = True
            self._emit(
                "order",
                "order.not_found_yet",
                client_id=cid,
                symbol=symbol,
                grace_s=self.cfg.lookup_grace_s,
                rejected_after_ms=grace_end,
            )
        if not not_found and now >= work.lookups_until_ms:
            self._note_stuck(order, "lookups fail")
        return self._wait(work, Phase.LOOKUP_WAIT, self._poll_s(order, work.delay_s))

    def _lookups_done(self, work: OrderWork) -> Step:
        self._unstick(work.order)
        return self._accepted(work)

    # ---- the wait for a final state, the cancel on timeout, stuck orders ---------------------

    def _cancelled(
        self, work: OrderWork, update: OrderUpdate | None, error: Exception | None
    ) -> Step:
        order = work.order
        if error is not None:
            self._call_failed(work, "cancel", error)
        elif update is not None:
            self.on_update(order.account, update)
        if work.phase is Phase.STUCK_CANCEL:
            return self._stuck_again(work)
        # Cancelled after the timeout: read the final state if the answer did not tell it.
        if not order.status.is_terminal:
            return self._ask(work, Phase.REFRESH)
        return self._final(work)

    def _refreshed(
        self, work: OrderWork, found: OrderUpdate | None, error: Exception | None
    ) -> Step:
        order = work.order
        if error is not None:
            self._call_failed(work, "refresh", error)
        elif found is not None:
            self.on_update(order.account, found)
        if work.phase is Phase.REFRESH:
            if order.status.is_terminal:
                return self._final(work)
            return self._wait(work, Phase.FINAL_WAIT, self.cfg.order_timeout_s)
        if not order.status.is_terminal:
            return self._ask(work, Phase.STUCK_CANCEL)
        return self._stuck_again(work)

    def _stuck(self, work: OrderWork) -> Step:
        """Not final after the cancel: asked about and alerted on until it is."""
        if work.order.status.is_terminal:
            return self._final(work)
        self._note_stuck(work.order, "not final after cancel")
        return self._wait(work, Phase.STUCK_WAIT, self._poll_s(work.order, work.delay_s))

    def _stuck_again(self, work: OrderWork) -> Step:
        work.delay_s = min(work.delay_s * 2, self.cfg.order_timeout_s)
        return self._stuck(work)

    def _final(self, work: OrderWork) -> Step:
        self._unstick(work.order)
        return self._wait(work, Phase.BOOKING, self.cfg.order_timeout_s / 2)

    # ---- fills ------------------------------------------------------------------------------

    def _fetched(
        self, work: OrderWork, fills: Sequence[Fill] | None, error: Exception | None
    ) -> Step:
        """Book the fills the venue has for this order (each trade id once)."""
        if error is not None:
            self._call_failed(work, "fetch_fills", error)
        for fill in fills or ():
            self.on_fill(work.order.account, fill)
        return self._done(work)

    # ---- waits and venue calls --------------------------------------------------------------

    def _wait(self, work: OrderWork, phase: Phase, wait_s: float) -> Step:
        """Wait up to `wait_s` clock seconds for the phase's condition, looking again on each
        change of the order (`_wake`) and when the wait ends (a timer)."""
        work.phase = phase
        if self._ready(work):
            return self._waited(work, True)
        work.until_ms = self.clock.now_ms() + int(wait_s * 1000)
        return self._wait_checked(work)

    def _wait_checked(self, work: OrderWork) -> Step:
        if self._ready(work):
            return self._waited(work, True)
        if work.until_ms <= self.clock.now_ms():
            return self._waited(work, False)
        cid = work.order.intent.client_id
        box: list[object] = []
        timer = self.clock.call_at(work.until_ms, lambda: self._out(self._on_timer(cid, box[0])))
        box.append(timer)
        work.timer = timer
        return []

    def _ready(self, work: OrderWork) -> bool:
        """The condition the current wait waits for."""
        order = work.order
        if work.phase is Phase.LOOKUP_WAIT:
            return order.status is not OrderStatus.SENT
        if work.phase is Phase.BOOKING:
            return order.settled
        return order.status.is_terminal

    def _waited(self, work: OrderWork, ok: bool) -> Step:
        """The current wait is over: `ok` when its condition holds."""
        self._stop_timer(work)
        phase = work.phase
        if phase is Phase.LOOKUP_WAIT:
            work.delay_s = min(work.delay_s * 2, 5.0)
            return self._ask(work, Phase.LOOKUP)
        if phase is Phase.WORKING:
            # Still working after its wait: cancel what rests, then read the final state.
            return self._wait_done(work) if ok else self._ask(work, Phase.CANCEL)
        if phase is Phase.FINAL_WAIT:
            work.delay_s = 0.2
            return self._stuck(work)
        if phase is Phase.STUCK_WAIT:
            return self._final(work) if ok else self._ask(work, Phase.STUCK_REFRESH)
        assert phase is Phase.BOOKING
        return self._done(work) if ok else self._ask(work, Phase.FETCH)

    def _wait_done(self, work: OrderWork) -> Step:
        # Final within its wait: never stuck, straight to its fills.
        return self._wait(work, Phase.BOOKING, self.cfg.order_timeout_s / 2)

    def _ask(self, work: OrderWork, phase: Phase) -> Step:
        """One venue call about the order, bounded by the driver; its answer comes back as an
        event for `phase`."""
        work.phase = phase
        o = work.order
        at = (o.account, o.intent.client_id, o.intent.symbol)
        if phase in (Phase.CANCEL, Phase.STUCK_CANCEL):
            return [Cancel(*at)]
        if phase is Phase.FETCH:
            return [FetchFills(*at)]
        return [LookUp(*at)]

    @staticmethod
    def _venue_error(error: Exception) -> None:
        """Venue errors and timeouts are answers to log; anything else is a surprise."""
        if not isinstance(error, VenueError | TimeoutError):
            raise error

    def _call_failed(self, work: OrderWork, what: str, error: Exception) -> None:
        self._venue_error(error)
        log.warning(
            "order.venue_call_failed",
            call=what,
            client_id=work.order.intent.client_id,
            error=repr(error),
        )
