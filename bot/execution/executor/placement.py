"""Taker placement: send one registered order once and follow it until it is settled. An
ambiguous create is resolved by looking the order up by client id (never re-sent); an order
still open after its wait is cancelled; fills the stream did not deliver are fetched. Orders
recovered after a restart are followed the same way (`adopt`)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import TypeVar

from bot.core.orders import OrderStatus
from bot.execution import pricing
from bot.execution.executor.stuck_handling import StuckHandling
from bot.execution.executor.taker import TakerPlan
from bot.execution.executor.tracking import log
from bot.execution.ledger import TrackedOrder
from bot.venues.base import Venue, VenueAmbiguous, VenueError, VenueRejected, VenueTransient

T = TypeVar("T")


class Placement(StuckHandling):
    async def _work_single(self, order: TrackedOrder, plan: TakerPlan) -> None:
        try:
            await self._place(order, plan.mid, self.cfg.order_timeout_s, cost=plan.cost)
            if order.settled and self.on_settled is not None:
                self.on_settled(order)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never let one order's surprise kill the daemon
            log.exception("order.work_failed", client_id=order.intent.client_id, error=repr(e))

    async def _place(
        self,
        order: TrackedOrder,
        mid: float,
        wait_s: float,
        *,
        cost: pricing.Cost | None = None,
        report_outcome: bool = True,
    ) -> None:
        """Send one registered order and follow it until it is settled (or a bounded wait
        gave up, which leaves it in flight and alerts)."""
        intent = order.intent
        cid = intent.client_id
        self._mark_sent(order, mid, cost)
        try:
            if not await self._create(order):
                if report_outcome:
                    self._outcome(order, False)
                return
            if report_outcome:
                self._outcome(order, order.status is not OrderStatus.REJECTED)
            await self._await_terminal(order, wait_s)
            await self._await_booked(order)
        finally:
            self._changed.pop(cid, None)
            self._emit(
                "order",
                "order.done",
                client_id=cid,
                symbol=intent.symbol,
                status=order.status.value,
                filled=order.booked,
                reason=order.reason,
            )

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

    async def _create(self, order: TrackedOrder) -> bool:
        """Send the create once; an ambiguous answer is resolved by lookup, never by sending
        again. False when the venue refused the order."""
        assert order.request is not None
        venue = self.venues[order.account]
        try:
            update = await self.clock.wait_for(
                venue.create_order(order.request), self.cfg.order_timeout_s
            )
            self.on_update(order.account, update)
        except VenueRejected as e:
            self._finish(order, OrderStatus.REJECTED, str(e))
            return False
        except (VenueAmbiguous, VenueTransient, TimeoutError) as e:
            self._emit("alert", "order.ambiguous", client_id=order.intent.client_id, error=repr(e))
            await self._resolve(order)
        return True

    async def _resolve(self, order: TrackedOrder) -> None:
        """Find out by client id whether a create reached the venue (ambiguous create, or an
        intent recovery did not find yet). "Not found" is believed only from the latest lookup
        and only once `lookup_grace_s` has passed since the send: venues take time to show new
        orders, and until then the order stays in flight (in delta, blocking its underlying).
        Lookups that fail past `order_timeout_s` make it a stuck order (alerts with backoff)
        until the venue answers or an operator resolves it."""
        venue = self.venues[order.account]
        cid, symbol = order.intent.client_id, order.intent.symbol
        deadline = self.clock.now_ms() + int(self.cfg.order_timeout_s * 1000)
        delay = 0.2
        told_pending = False
        while True:  # at least one lookup, even when a stream update came first
            not_found = False
            try:
                found = await self.clock.wait_for(
                    venue.fetch_order(cid, symbol), self.cfg.order_timeout_s
                )
            except (VenueError, TimeoutError) as e:
                log.warning("order.lookup_failed", client_id=cid, error=repr(e))
            else:
                if found is not None:
                    self._emit("order", "order.resolved", client_id=cid, status=found.status.value)
                    self.on_update(order.account, found)
                    break
                not_found = True
            if order.status is not OrderStatus.SENT:
                break  # a stream update or an operator answered meanwhile
            now = self.clock.now_ms()
            grace_end = order.created_ms + int(self.cfg.lookup_grace_s * 1000)
            if not_found and now >= grace_end:
                # Still unseen after the whole grace: it never arrived. The order stays in
                # the ledger as rejected, so a late fill is still booked.
                self._finish(order, OrderStatus.REJECTED, "not found within lookup_grace_s")
                break
            if not_found and not told_pending:
                told_pending = True
                self._emit(
                    "order",
                    "order.not_found_yet",
                    client_id=cid,
                    symbol=symbol,
                    grace_s=self.cfg.lookup_grace_s,
                    rejected_after_ms=grace_end,
                )
            if not not_found and now >= deadline:
                self._note_stuck(order, "lookups fail")
            await self._wait_for(
                order, lambda: order.status is not OrderStatus.SENT, self._poll_s(order, delay)
            )
            delay = min(delay * 2, 5.0)
        self._unstick(order)

    async def _await_terminal(self, order: TrackedOrder, wait_s: float) -> None:
        """Wait `wait_s` (clock seconds) for a final state, then cancel and read it; an order
        still not final then is stuck: asked about and alerted on until it is."""
        if await self._wait_for(order, lambda: order.status.is_terminal, wait_s):
            return
        bound = self.cfg.order_timeout_s
        # Still working after the timeout: cancel what rests, then read the final state.
        await self._cancel(order)
        if not order.status.is_terminal:
            await self._refresh(order)
        if not order.status.is_terminal:
            await self._wait_for(order, lambda: order.status.is_terminal, bound)
        delay = 0.2
        while not order.status.is_terminal:
            self._note_stuck(order, "not final after cancel")
            if await self._wait_for(
                order, lambda: order.status.is_terminal, self._poll_s(order, delay)
            ):
                break
            await self._refresh(order)
            if not order.status.is_terminal:
                await self._cancel(order)
            delay = min(delay * 2, bound)
        self._unstick(order)

    async def _await_booked(self, order: TrackedOrder) -> None:
        timeout = self.cfg.order_timeout_s
        if await self._wait_for(order, lambda: order.settled, timeout / 2):
            return
        await self.fetch_fills(order)

    async def fetch_fills(self, order: TrackedOrder) -> None:
        """Book the fills the venue has for this order (each trade id once)."""
        fills = await self._ask(order, "fetch_fills", lambda v, c, s: v.fetch_fills(c, s))
        for fill in fills or ():
            self.on_fill(order.account, fill)

    async def _refresh(self, order: TrackedOrder) -> None:
        found = await self._ask(order, "refresh", lambda v, c, s: v.fetch_order(c, s))
        if found is not None:
            self.on_update(order.account, found)

    async def _cancel(self, order: TrackedOrder) -> None:
        update = await self._ask(order, "cancel", lambda v, c, s: v.cancel_order(c, s))
        if update is not None:
            self.on_update(order.account, update)

    async def _ask(
        self,
        order: TrackedOrder,
        what: str,
        call: Callable[[Venue, str, str], Awaitable[T]],
    ) -> T | None:
        """One bounded venue call about this order; a failure is logged and gives None."""
        venue = self.venues[order.account]
        try:
            return await self.clock.wait_for(
                call(venue, order.intent.client_id, order.intent.symbol), self.cfg.order_timeout_s
            )
        except (VenueError, TimeoutError) as e:
            log.warning(
                "order.venue_call_failed",
                call=what,
                client_id=order.intent.client_id,
                error=repr(e),
            )
            return None

    # ---- adopting orders found after a restart ------------------------------------------------

    def adopt(self, order: TrackedOrder, *, look_up: bool = False) -> None:
        """Keep working an order recovered from the journal that is still open at the venue:
        wait (bounded), cancel on timeout, book its fills, then let the policy look again.
        `look_up`: the venue did not show it yet; look it up until lookup_grace_s has passed
        since it was sent (see _resolve) before anything else."""
        self._changed[order.intent.client_id] = asyncio.Event()
        self._spawn(self._work_adopted(order, look_up), order.intent.client_id)

    async def _work_adopted(self, order: TrackedOrder, look_up: bool = False) -> None:
        try:
            if look_up:
                await self._resolve(order)
            await self._await_terminal(order, self.cfg.order_timeout_s)
            await self._await_booked(order)
            if order.settled and self.on_settled is not None:
                self.on_settled(order)
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("order.work_failed", client_id=order.intent.client_id, error=repr(e))
        finally:
            self._changed.pop(order.intent.client_id, None)
