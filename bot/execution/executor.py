"""The executor: works one approved intent on its venue until every fill is booked.

Money-safety rules it keeps (design.md):
- one intent, one client id; the create is never re-sent: an ambiguous create (timeout, network
  error) is resolved by looking the order up by client id;
- the order is in the ledger (and so in delta) before it is sent, and stays until settled;
- every wait is bounded: an order still open after `order_timeout_s` is cancelled, and fills the
  fill stream has not delivered are fetched from the venue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from bot.clock import Clock
from bot.config import ExecutionConfig
from bot.core.instruments import Instrument
from bot.core.market import OrderBook, Ticker
from bot.core.orders import Fill, OrderIntent, OrderRequest, OrderStatus, OrderUpdate, Side
from bot.events import Event, EventBus, EventKind
from bot.execution.ledger import Ledger, TrackedOrder
from bot.venues.base import (
    Venue,
    VenueAmbiguous,
    VenueError,
    VenueRejected,
    VenueTransient,
)

log = structlog.get_logger("hedgebot.executor")


class OrderJournal(Protocol):
    """What the executor writes to the journal, before and after each step."""

    def record_intent(self, intent: OrderIntent, ts_ms: int) -> None: ...

    def mark_sent(self, request: OrderRequest, ts_ms: int) -> None: ...

    def record_order_update(self, update: OrderUpdate) -> None: ...

    def record_fill(self, fill: Fill) -> bool: ...


def marketable_limit(side: Side, mid: float, max_slippage_bps: float, ins: Instrument) -> float:
    """A limit price that crosses the spread but never fills worse than the slippage cap."""
    cap = mid * (1 + side.sign * max_slippage_bps / 10_000.0)
    return ins.round_price(cap, up=side is Side.SELL)


class Executor:
    def __init__(
        self,
        venues: Mapping[str, Venue],
        instruments: Mapping[tuple[str, str], Instrument],
        ledger: Ledger,
        bus: EventBus,
        clock: Clock,
        cfg: ExecutionConfig,
        journal: OrderJournal | None = None,
    ) -> None:
        self.venues = venues
        self.instruments = instruments
        self.ledger = ledger
        self.bus = bus
        self.clock = clock
        self.cfg = cfg
        self.journal = journal
        self._changed: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self.on_settled: Callable[[TrackedOrder], None] | None = None
        self.on_outcome: Callable[[TrackedOrder, bool], None] | None = None
        self.orders_sent = 0
        self.orders_refused = 0

    # ---- inputs from the venue streams -------------------------------------------------------

    def on_update(self, account: str, update: OrderUpdate) -> None:
        order = self.ledger.apply_update(update)
        if order is None:
            self._emit(
                "alert",
                "order.unknown",
                account=account,
                client_id=update.client_id,
                symbol=update.symbol,
                status=update.status.value,
            )
            return
        if self.journal is not None:
            self.journal.record_order_update(update)
        self._wake(update.client_id)

    def on_fill(self, account: str, fill: Fill) -> bool:
        if self.journal is not None:
            self.journal.record_fill(fill)
        booked = self.ledger.book_fill(account, fill)
        if booked:
            self._emit(
                "fill",
                "order.fill",
                account=account,
                client_id=fill.client_id,
                symbol=fill.symbol,
                side=fill.side.value,
                amount=fill.amount,
                price=fill.price,
                fee=fill.fee,
                fee_currency=fill.fee_currency,
                trade_id=fill.trade_id,
            )
            self._wake(fill.client_id)
        return booked

    # ---- submitting ---------------------------------------------------------------------------

    def limit_price(self, account: str, intent: OrderIntent, ticker: Ticker) -> float | None:
        mid = ticker.mid
        if mid is None or mid <= 0:
            return None
        ins = self.instruments[(account, intent.symbol)]
        return marketable_limit(intent.side, mid, self.cfg.max_slippage_bps, ins)

    def submit(
        self, account: str, intent: OrderIntent, ticker: Ticker, book: OrderBook | None = None
    ) -> TrackedOrder | None:
        """Guard, price and register the intent, then work it in a task. None when refused.
        `book` is the latest order book of the instrument, when the engine has one."""
        ins = self.instruments[(account, intent.symbol)]
        mid = ticker.mid
        price = self.limit_price(account, intent, ticker)
        if mid is None or price is None:
            self._refuse(intent, "no_mid", symbol=intent.symbol)
            return None
        fee_bps = ins.taker_fee * 10_000.0
        if fee_bps > self.cfg.max_fee_bps:
            self._refuse(intent, "fee_cap", fee_bps=fee_bps, max_fee_bps=self.cfg.max_fee_bps)
            return None
        request = OrderRequest(
            client_id=intent.client_id,
            symbol=intent.symbol,
            side=intent.side,
            amount=intent.amount,
            price=price,
            reduce_only=intent.reduce_only,
        )
        now = self.clock.now_ms()
        if self.journal is not None:
            self.journal.record_intent(intent, now)  # before anything can reach the venue
        order = self.ledger.open(account, intent, request, now)
        self._changed[intent.client_id] = asyncio.Event()
        task = asyncio.create_task(self._work(order, mid), name=f"order-{intent.client_id}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return order

    async def _work(self, order: TrackedOrder, mid: float) -> None:
        intent, request = order.intent, order.request
        assert request is not None
        venue = self.venues[order.account]
        cid = intent.client_id
        self._emit(
            "order",
            "order.sent",
            account=order.account,
            client_id=cid,
            underlying=intent.underlying,
            symbol=intent.symbol,
            side=intent.side.value,
            amount=intent.amount,
            price=request.price,
            mid=mid,
            max_slippage_bps=self.cfg.max_slippage_bps,
            reduce_only=request.reduce_only,
        )
        self.orders_sent += 1
        order.status = OrderStatus.SENT
        if self.journal is not None:
            self.journal.mark_sent(request, self.clock.now_ms())
        try:
            try:
                update = await asyncio.wait_for(
                    venue.create_order(request), self.clock.to_real(self.cfg.order_timeout_s)
                )
                self.on_update(order.account, update)
                self._outcome(order, update.status is not OrderStatus.REJECTED)
            except VenueRejected as e:
                self._finish(order, OrderStatus.REJECTED, str(e))
                self._outcome(order, False)
                return
            except (VenueAmbiguous, VenueTransient, TimeoutError) as e:
                self._emit("alert", "order.ambiguous", client_id=cid, error=repr(e))
                await self._resolve(order)
            self._outcome(order, order.status is not OrderStatus.REJECTED)
            await self._await_terminal(order)
            await self._await_booked(order)
            if order.settled and self.on_settled is not None:
                self.on_settled(order)
        except asyncio.CancelledError:
            raise
        except Exception as e:  # never let one order's surprise kill the daemon
            log.exception("order.work_failed", client_id=cid, error=repr(e))
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

    async def _resolve(self, order: TrackedOrder) -> None:
        """Find out by client id whether an ambiguous create reached the venue."""
        venue = self.venues[order.account]
        cid, symbol = order.intent.client_id, order.intent.symbol
        deadline = self.clock.now_ms() + int(self.cfg.order_timeout_s * 1000)
        delay = 0.2
        while True:
            try:
                found = await asyncio.wait_for(
                    venue.fetch_order(cid, symbol), self.clock.to_real(self.cfg.order_timeout_s)
                )
            except (VenueError, TimeoutError) as e:
                log.warning("order.lookup_failed", client_id=cid, error=repr(e))
                found = None
            else:
                if found is not None:
                    self._emit("order", "order.resolved", client_id=cid, status=found.status.value)
                    self.on_update(order.account, found)
                    return
            if self.clock.now_ms() >= deadline:
                # The venue has not seen it after a full timeout: it never arrived. The order
                # stays in the ledger as rejected, so a late fill for it is still booked.
                self._finish(order, OrderStatus.REJECTED, "not found after ambiguous create")
                return
            await self.clock.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def _await_terminal(self, order: TrackedOrder) -> None:
        timeout = self.clock.to_real(self.cfg.order_timeout_s)
        if await self._wait_for(order, lambda: order.status.is_terminal, timeout):
            return
        venue = self.venues[order.account]
        cid, symbol = order.intent.client_id, order.intent.symbol
        # Still working after the timeout: cancel what rests, then read the final state.
        try:
            update = await asyncio.wait_for(venue.cancel_order(cid, symbol), timeout)
            if update is not None:
                self.on_update(order.account, update)
        except (VenueError, TimeoutError) as e:
            log.warning("order.cancel_failed", client_id=cid, error=repr(e))
        if not order.status.is_terminal:
            await self._refresh(order)
        if not order.status.is_terminal:
            await self._wait_for(order, lambda: order.status.is_terminal, timeout)
        if not order.status.is_terminal:
            self._emit("alert", "order.stuck", client_id=cid, status=order.status.value)

    async def _await_booked(self, order: TrackedOrder) -> None:
        timeout = self.clock.to_real(self.cfg.order_timeout_s)
        if await self._wait_for(order, lambda: order.settled, timeout / 2):
            return
        venue = self.venues[order.account]
        try:
            fills = await asyncio.wait_for(
                venue.fetch_fills(order.intent.client_id, order.intent.symbol), timeout
            )
        except (VenueError, TimeoutError) as e:
            log.warning("order.fetch_fills_failed", client_id=order.intent.client_id, error=repr(e))
            return
        for fill in fills:
            self.on_fill(order.account, fill)

    async def _refresh(self, order: TrackedOrder) -> None:
        venue = self.venues[order.account]
        try:
            found = await asyncio.wait_for(
                venue.fetch_order(order.intent.client_id, order.intent.symbol),
                self.clock.to_real(self.cfg.order_timeout_s),
            )
        except (VenueError, TimeoutError) as e:
            log.warning("order.refresh_failed", client_id=order.intent.client_id, error=repr(e))
            return
        if found is not None:
            self.on_update(order.account, found)

    async def _wait_for(
        self, order: TrackedOrder, check: Callable[[], bool], wait_s: float
    ) -> bool:
        event = self._changed.get(order.intent.client_id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while not check():
            remaining = deadline - loop.time()
            if remaining <= 0 or event is None:
                return check()
            event.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(event.wait(), remaining)
        return True

    def _finish(self, order: TrackedOrder, status: OrderStatus, reason: str) -> None:
        self.ledger.mark(order.intent.client_id, status, self.clock.now_ms(), reason)
        if status is OrderStatus.REJECTED:
            self._emit(
                "reject",
                "order.rejected",
                client_id=order.intent.client_id,
                symbol=order.intent.symbol,
                reason=reason,
            )
        if self.journal is not None:
            self.journal.record_order_update(
                OrderUpdate(
                    client_id=order.intent.client_id,
                    symbol=order.intent.symbol,
                    side=order.intent.side,
                    amount=order.intent.amount,
                    filled=order.venue_filled,
                    status=order.status,
                    ts_ms=self.clock.now_ms(),
                    reason=reason,
                )
            )

    def _outcome(self, order: TrackedOrder, accepted: bool) -> None:
        if self.on_outcome is not None:
            self.on_outcome(order, accepted)

    def _refuse(self, intent: OrderIntent, rule: str, **numbers: object) -> None:
        self.orders_refused += 1
        self._emit(
            "reject",
            "order.refused",
            client_id=intent.client_id,
            underlying=intent.underlying,
            symbol=intent.symbol,
            rule=rule,
            **numbers,
        )

    # ---- shutdown -------------------------------------------------------------------------

    async def cancel_all(self) -> None:
        """Cancel every order that is still working and wait (bounded) for the outcome."""
        timeout = self.clock.to_real(self.cfg.shutdown_timeout_s)
        for order in list(self.ledger.unsettled()):
            if order.status.is_terminal:
                continue
            venue = self.venues[order.account]
            try:
                update = await asyncio.wait_for(
                    venue.cancel_order(order.intent.client_id, order.intent.symbol), timeout
                )
                if update is not None:
                    self.on_update(order.account, update)
            except (VenueError, TimeoutError) as e:
                log.warning("order.cancel_failed", client_id=order.intent.client_id, error=repr(e))
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def close(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        if self._tasks:
            await asyncio.gather(*self._tasks, return_exceptions=True)

    @property
    def busy(self) -> bool:
        return bool(self._tasks)

    # ---- helpers ------------------------------------------------------------------------

    def _wake(self, client_id: str) -> None:
        event = self._changed.get(client_id)
        if event is not None:
            event.set()

    def _emit(self, kind: EventKind, name: str, **data: object) -> None:
        self.bus.emit(Event(kind, name, self.clock.now_ms(), data))
