"""The parent algorithms, maker_first and twap: the whole intent is a reservation in the ledger
(no request, nothing sent) and is worked in child orders, each moved out of the reservation in
one step so the in-flight total never dips, each placed by the taker placement."""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Coroutine
from typing import Any

from bot.core.market import OrderBook
from bot.core.orders import OrderIntent, OrderStatus, Side
from bot.execution import pricing
from bot.execution.executor.placement import Placement
from bot.execution.executor.taker import Refusal, TakerPlan
from bot.execution.executor.tracking import log
from bot.execution.ledger import TrackedOrder


@dataclasses.dataclass(slots=True)
class Progress:
    """What a parent's work has filled so far and why it ended: the record `_end_parent` reports
    whether the work returns or fails part way."""

    filled: float = 0.0
    reason: str = "done"


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
        progress = Progress()
        work = (
            self._work_maker(parent, progress)
            if mode == "maker_first"
            else self._work_twap(parent, slices, progress)
        )
        self._spawn(self._run_parent(parent, work, progress), intent.client_id)
        return parent

    async def _run_parent(
        self, parent: TrackedOrder, work: Coroutine[Any, Any, None], progress: Progress
    ) -> None:
        """Work the parent, then settle it with what filled, whatever ended the work."""
        try:
            await work
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("order.work_failed", client_id=parent.intent.client_id, error=repr(e))
            progress.reason = "error"
        self._end_parent(parent, progress.filled, progress.reason)

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

    async def _work_maker(self, parent: TrackedOrder, p: Progress) -> None:
        intent = parent.intent  # as submitted: the reservation's amount shrinks as it works
        ins = self.instruments[parent.key]
        cfg = self.cfg.for_symbol(intent.symbol)
        lot = max(ins.min_amount, ins.amount_step)
        deadline_ms = self.clock.now_ms() + int(cfg.maker_timeout_s * 1000)
        p.reason = "filled"
        for n in range(1, cfg.maker_reprices + 2):
            rest = ins.round_amount(parent.intent.amount)
            if rest < lot or self._stopping or self.clock.now_ms() >= deadline_ms:
                break
            child = await self._post_at_touch(parent, f"m{n}", rest, deadline_ms)
            if child is None:
                break
            p.filled += child.booked
            if not child.settled:
                p.reason = "child_unsettled"  # still in flight on its own: stop here
                return
            # What the child did not fill goes back to the reservation for the next try.
            self._reserve(parent, parent.intent.amount + rest - child.venue_filled)
        rest = ins.round_amount(parent.intent.amount)
        if rest < lot:
            return
        if self._stopping:
            p.reason = "stopping"
            return
        plan = self._plan_child(parent, intent, rest, stage="maker_fallback")
        if isinstance(plan, str):
            p.reason = f"fallback_refused:{plan}"
            return
        self._emit(
            "order",
            "order.maker_fallback",
            client_id=intent.client_id,
            amount=plan.amount,
            rest=rest,
        )
        p.filled += (await self._send_taker_child(parent, "t", plan)).booked

    async def _post_at_touch(
        self, parent: TrackedOrder, suffix: str, rest: float, deadline_ms: int
    ) -> TrackedOrder | None:
        """Post the rest at the touch and follow it until the re-price time; None (nothing
        sent) when there is no fresh book to price from."""
        book = self.fresh_book(parent.key)
        touch = pricing.touch_price(book, parent.intent.side) if book else None
        if book is None or touch is None:
            return None
        cfg = self.cfg.for_symbol(parent.intent.symbol)
        child = self._child(parent, suffix, rest, touch, post_only=True)
        wait = min(cfg.maker_reprice_s, max(deadline_ms - self.clock.now_ms(), 0) / 1000.0)
        # Post-only rejects (the touch moved and it would cross) are normal for a maker:
        # they do not feed the circuit breaker.
        await self._place(child, book.mid or touch, wait, report_outcome=False)
        return child

    async def _work_twap(self, parent: TrackedOrder, slices: int, p: Progress) -> None:
        intent = parent.intent  # as submitted: the reservation's amount shrinks as it works
        cfg = self.cfg.for_symbol(intent.symbol)
        per = self.instruments[parent.key].round_amount(intent.amount / slices)
        interval = cfg.twap_duration_s / slices
        for i in range(1, slices + 1):
            if i > 1 and not self._stopping:
                await self.clock.sleep(interval)
            if self._stopping:
                p.reason = "stopping"
                return
            amount, p.reason = self._slice_amount(parent, i, slices, per, p.filled)
            if amount is None:
                return
            plan = self._plan_child(parent, intent, amount, stage="twap_slice", slice=i)
            if isinstance(plan, str):
                p.reason = f"slice_refused:{plan}"
                return
            p.filled += (await self._send_taker_child(parent, f"s{i}", plan)).booked

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

    async def _send_taker_child(
        self, parent: TrackedOrder, suffix: str, plan: TakerPlan
    ) -> TrackedOrder:
        """Move the plan's amount into a taker child and follow it until it is settled."""
        child = self._child(parent, suffix, plan.amount, plan.price, post_only=False)
        cfg = self.cfg.for_symbol(parent.intent.symbol)
        await self._place(child, plan.mid, cfg.order_timeout_s, cost=plan.cost)
        return child

    def _need(self, parent: TrackedOrder, rest: float) -> float | None:
        """Contracts the drift still asks for on the parent's side, not counting the parent's own
        unsent rest (which delta counts as in flight); None when the engine cannot say."""
        if self.gap_of is None:
            return None
        gap = self.gap_of(parent.intent.underlying)
        if gap is None:
            return None
        return (gap + parent.intent.side.sign * rest) * parent.intent.side.sign
