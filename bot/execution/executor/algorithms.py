"""The parent algorithms, maker_first and twap, as synchronous state machines: the whole intent
is a reservation in the ledger (no request, nothing sent) and is worked in child orders, each
moved out of the reservation in one step so the in-flight total never dips, each placed by the
taker placement. A parent moves on when its child is done (`_child_done`) or, between TWAP
slices, when its timer fires."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from bot.core.market import OrderBook
from bot.core.orders import OrderIntent, OrderStatus, Side
from bot.execution import pricing
from bot.execution.executor.commands import Step
from bot.execution.executor.placement import Placement
from bot.execution.executor.taker import Refusal, TakerPlan
from bot.execution.executor.tracking import log
from bot.execution.executor.work import ParentWork
from bot.execution.ledger import TrackedOrder


class Algorithms(Placement):
    def _start_parent(
        self, account: str, intent: OrderIntent, mode: str, slices: int, book: OrderBook
    ) -> TrackedOrder:
        """Register the whole intent as a reservation in the ledger (no request, nothing sent),
        then work it in children."""
        parent = self.ledger.open(account, intent, None, self.clock.now_ms())
        self._emit(
            "order",
            "order.parent",
            client_id=intent.client_id,
            underlying=intent.underlying,
            symbol=intent.symbol,
            side=intent.side.value,
            amount=intent.amount,
            mode=mode,
            slices=slices,
            depth=sum(lv.amount for lv in (book.asks if intent.side is Side.BUY else book.bids)),
        )
        work = ParentWork(parent, mode, intent, slices)
        self._parents[intent.client_id] = work
        cfg = self.cfg.for_symbol(intent.symbol)
        if mode == "maker_first":
            work.deadline_ms = self.clock.now_ms() + int(cfg.maker_timeout_s * 1000)
            work.reason = "filled"
        else:
            work.per = self.instruments[parent.key].round_amount(intent.amount / slices)
            work.interval_s = cfg.twap_duration_s / slices
        # The first child goes on the clock's next turn: the caller books its decision first.
        self._next_after(work, 0.0)
        return parent

    def _next_after(self, work: ParentWork, delay_s: float) -> None:
        cid = work.intent.client_id
        work.timer = self.clock.call_later(delay_s, lambda: self._out(self._on_parent_timer(cid)))

    def _on_parent_timer(self, parent: str) -> Step:
        work = self._parents.get(parent)
        if work is None:
            return []
        work.timer = None
        if work.mode == "maker_first":
            return self._parent_step(work, lambda: self._post_next(work))
        return self._parent_step(work, lambda: self._slice_next(work))

    def _parent_step(self, work: ParentWork, step: Callable[[], Step]) -> Step:
        """Run one step of a parent; whatever fails, it is settled with what filled."""
        try:
            return step()
        except Exception as e:
            log.exception("order.work_failed", client_id=work.intent.client_id, error=repr(e))
            if work.intent.client_id in self._parents:
                work.reason = "error"
                self._end(work)
            return []

    def _child_done(self, parent: str, child: TrackedOrder) -> Step:
        work = self._parents.get(parent)
        if work is None:
            return []
        return self._parent_step(work, lambda: self._after_child(work, child))

    def _parent_failed(self, parent: str) -> Step:
        work = self._parents.get(parent)
        if work is not None:
            work.reason = "error"
            self._end(work)
        return []

    def _after_child(self, work: ParentWork, child: TrackedOrder) -> Step:
        work.filled += child.booked
        if work.mode != "maker_first":
            work.step += 1
            if work.step > work.slices:
                return self._end(work)
            if self._stopping:
                return self._slice_next(work)
            self._next_after(work, work.interval_s)
            return []
        if work.fallback:
            return self._end(work)
        if not child.settled:
            work.reason = "child_unsettled"  # still in flight on its own: stop here
            return self._end(work)
        # What the child did not fill goes back to the reservation for the next try.
        self._reserve(work.parent, work.parent.intent.amount + work.rest - child.venue_filled)
        work.step += 1
        return self._post_next(work)

    def _end(self, work: ParentWork) -> Step:
        self._parents.pop(work.intent.client_id, None)
        if work.timer is not None:
            work.timer.cancel()
            work.timer = None
        try:
            self._end_parent(work.parent, work.filled, work.reason)
        finally:
            self._check_idle()
        return []

    def _child(
        self, parent: TrackedOrder, suffix: str, amount: float, price: float, post_only: bool
    ) -> TrackedOrder:
        """Move `amount` from the parent's reservation into a new child order, in one step so
        the in-flight total never dips."""
        intent = dataclasses.replace(
            parent.intent, client_id=parent.intent.client_id + suffix, amount=amount
        )
        child = self._open(parent.account, intent, price, post_only=post_only)
        self._reserve(parent, parent.intent.amount - amount)
        return child

    @staticmethod
    def _reserve(parent: TrackedOrder, amount: float) -> None:
        parent.intent = dataclasses.replace(parent.intent, amount=max(round(amount, 12), 0.0))

    def _end_parent(self, parent: TrackedOrder, filled: float, reason: str) -> None:
        """Release the reservation and report the outcome as one settled order."""
        self._reserve(parent, filled)
        parent.venue_filled = parent.booked = filled
        self.ledger.mark(
            parent.intent.client_id,
            OrderStatus.FILLED if filled > 0 else OrderStatus.CANCELLED,
            self.clock.now_ms(),
            reason,
        )
        self._emit(
            "order",
            "order.parent_done",
            client_id=parent.intent.client_id,
            symbol=parent.intent.symbol,
            filled=filled,
            reason=reason,
        )
        try:
            if self.on_settled is not None:  # filled or not, the policy looks again
                self.on_settled(parent)
        finally:
            # The reservation was never a venue order: drop it, so counts of orders stay true.
            self.ledger.orders.pop(parent.intent.client_id, None)

    # ---- maker_first --------------------------------------------------------------------------

    def _post_next(self, work: ParentWork) -> Step:
        """Post the rest at the touch again, or, once the re-prices or the time are used up,
        send what is left as a taker order."""
        parent = work.parent
        ins = self.instruments[parent.key]
        cfg = self.cfg.for_symbol(work.intent.symbol)
        lot = max(ins.min_amount, ins.amount_step)
        if work.step <= cfg.maker_reprices + 1:
            rest = ins.round_amount(parent.intent.amount)
            if not (rest < lot or self._stopping or self.clock.now_ms() >= work.deadline_ms):
                posted = self._post_at_touch(work, f"m{work.step}", rest)
                if posted is not None:
                    return posted
        return self._maker_fallback(work)

    def _post_at_touch(self, work: ParentWork, suffix: str, rest: float) -> Step | None:
        """Post the rest at the touch until the re-price time; None (nothing sent) when there
        is no fresh book to price from."""
        parent = work.parent
        book = self.fresh_book(parent.key)
        touch = pricing.touch_price(book, parent.intent.side) if book else None
        if book is None or touch is None:
            return None
        cfg = self.cfg.for_symbol(parent.intent.symbol)
        child = self._child(parent, suffix, rest, touch, post_only=True)
        work.rest = rest
        wait = min(cfg.maker_reprice_s, max(work.deadline_ms - self.clock.now_ms(), 0) / 1000.0)
        # Post-only rejects (the touch moved and it would cross) are normal for a maker:
        # they do not feed the circuit breaker.
        return self._place(
            child, book.mid or touch, wait, report_outcome=False, parent=work.intent.client_id
        )

    def _maker_fallback(self, work: ParentWork) -> Step:
        parent, intent = work.parent, work.intent
        ins = self.instruments[parent.key]
        rest = ins.round_amount(parent.intent.amount)
        if rest < max(ins.min_amount, ins.amount_step):
            return self._end(work)
        if self._stopping:
            work.reason = "stopping"
            return self._end(work)
        plan = self._plan_child(parent, intent, rest, stage="maker_fallback")
        if isinstance(plan, str):
            work.reason = f"fallback_refused:{plan}"
            return self._end(work)
        self._emit(
            "order",
            "order.maker_fallback",
            client_id=intent.client_id,
            amount=plan.amount,
            rest=rest,
        )
        work.fallback = True
        return self._send_taker_child(work, "t", plan)

    # ---- twap -------------------------------------------------------------------------------

    def _slice_next(self, work: ParentWork) -> Step:
        """Send slice `work.step`, or end the slicing here."""
        if self._stopping:
            work.reason = "stopping"
            return self._end(work)
        i = work.step
        amount, work.reason = self._slice_amount(work.parent, i, work.slices, work.per, work.filled)
        if amount is None:
            return self._end(work)
        plan = self._plan_child(work.parent, work.intent, amount, stage="twap_slice", slice=i)
        if isinstance(plan, str):
            work.reason = f"slice_refused:{plan}"
            return self._end(work)
        return self._send_taker_child(work, f"s{i}", plan)

    def _slice_amount(
        self, parent: TrackedOrder, i: int, slices: int, per: float, filled: float
    ) -> tuple[float | None, str]:
        """Slice `i`'s amount: its share of the rest, no more than the drift still asks for;
        None and why when the slicing ends here."""
        ins = self.instruments[parent.key]
        lot = max(ins.min_amount, ins.amount_step)
        rest = ins.round_amount(parent.intent.amount)
        need = self._need(parent, rest)
        if need is not None and need < lot:
            self._emit(
                "order",
                "twap.stopped",
                client_id=parent.intent.client_id,
                slice=i,
                slices=slices,
                need=need,
                rest=rest,
                filled=filled,
                reason="drift_gone",
            )
            return None, "drift_gone"
        amount = rest if i == slices else min(per, rest)
        if need is not None:
            amount = min(amount, ins.round_amount(need))
        if amount < lot:
            return None, "done"
        return amount, "done"

    def _plan_child(
        self, parent: TrackedOrder, intent: OrderIntent, amount: float, **where: object
    ) -> TakerPlan | str:
        """A taker plan for `amount` from the latest book, or the rule that refused it (reported
        against the intent as submitted, with `where`)."""
        book = self.fresh_book(parent.key)
        try:
            return self.plan_taker(
                parent.account, intent.symbol, intent.side, amount, book, book.mid if book else None
            )
        except Refusal as r:
            self._refuse(intent, r.rule, **where, **r.numbers)
            return r.rule

    def _send_taker_child(self, work: ParentWork, suffix: str, plan: TakerPlan) -> Step:
        """Move the plan's amount into a taker child and follow it until it is settled."""
        child = self._child(work.parent, suffix, plan.amount, plan.price, post_only=False)
        cfg = self.cfg.for_symbol(work.intent.symbol)
        return self._place(
            child, plan.mid, cfg.order_timeout_s, cost=plan.cost, parent=work.intent.client_id
        )

    def _need(self, parent: TrackedOrder, rest: float) -> float | None:
        """Contracts the drift still asks for on the parent's side, not counting the parent's own
        unsent rest (which delta counts as in flight); None when the engine cannot say."""
        if self.gap_of is None:
            return None
        gap = self.gap_of(parent.intent.underlying)
        if gap is None:
            return None
        return (gap + parent.intent.side.sign * rest) * parent.intent.side.sign
