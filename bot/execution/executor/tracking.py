"""The executor's order book-keeping: its state, the venue stream inputs (updates, fills), the
journal-before-ledger opening of an order, its final marks and the events it emits. Each change
of an order wakes its follow-up (`_wake`, answered in placement.py)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping
from typing import Protocol

import structlog

from bot.clock import Clock
from bot.config_execution import ExecutionConfig
from bot.core.instruments import Instrument
from bot.core.market import OrderBook, Ticker
from bot.core.orders import (
    Fill,
    FillRecord,
    OrderIntent,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from bot.events import Event, EventBus, EventKind
from bot.execution.executor.commands import Command
from bot.execution.executor.taker import TakerPlan, marketable_limit, plan_taker
from bot.execution.executor.transitions import can_transition
from bot.execution.executor.work import OrderWork, ParentWork
from bot.execution.ledger import Ledger, TrackedOrder
from bot.execution.stuck import StuckOrders
from bot.venues.base import Venue

log = structlog.get_logger("hedgebot.executor")

LineKey = tuple[str, str]
# Signed contracts of the hedge instrument that would bring the underlying to its target,
# counting every in-flight order (reservations included); None when unknown (no market).
GapFn = Callable[[str], float | None]


class OrderJournal(Protocol):
    """What the executor writes to the journal, before and after each step."""

    def record_intent(self, intent: OrderIntent, ts_ms: int) -> None: ...

    def mark_sent(self, request: OrderRequest, ts_ms: int) -> None: ...

    def record_order_update(self, update: OrderUpdate) -> None: ...

    def record_fill(self, fill: Fill, account: str) -> FillRecord: ...


class OrderTracking:
    """State and book-keeping shared by every part of the executor (see the package doc)."""

    def __init__(
        self,
        venues: Mapping[str, Venue],
        instruments: Mapping[tuple[str, str], Instrument],
        ledger: Ledger,
        bus: EventBus,
        clock: Clock,
        cfg: ExecutionConfig,
        journal: OrderJournal | None = None,
        books: Mapping[LineKey, OrderBook] | None = None,
        gap_of: GapFn | None = None,
        on_settled: Callable[[TrackedOrder], None] | None = None,
        on_outcome: Callable[[TrackedOrder, bool], None] | None = None,
        unique: Callable[[], str] = lambda: uuid.uuid4().hex[:24],
    ) -> None:
        """`books`: the live order books, read again before each re-price and slice; `gap_of`:
        the hedge gap of an underlying, read before each TWAP slice; `on_settled`: a finished
        order (the policy may look again); `on_outcome`: a venue accepted or refused an order
        (the circuit breaker); `unique`: 24 alphanumerics that make a client id unique
        (random live; a seeded counter in a backtest, so a run repeats exactly)."""
        self.venues = venues
        self.instruments = instruments
        self.ledger = ledger
        self.bus = bus
        self.clock = clock
        self.cfg = cfg
        self.journal = journal
        self.books: Mapping[LineKey, OrderBook] = books if books is not None else {}
        self.gap_of = gap_of
        self._seen_books: dict[LineKey, OrderBook] = {}
        self._stopping = False
        self._works: dict[str, OrderWork] = {}  # orders followed, by client id
        self._parents: dict[str, ParentWork] = {}  # parent algorithms at work, by client id
        self.reported_unknown: set[str] = set()  # unknown venue orders already alerted on
        self.stuck = StuckOrders()
        self.on_settled = on_settled
        self.on_outcome = on_outcome
        self._unique = unique
        self.orders_sent = 0
        self.orders_refused = 0

    # ---- inputs from the venue streams -------------------------------------------------------

    def on_update(self, account: str, update: OrderUpdate) -> None:
        order = self.ledger.orders.get(update.client_id)
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
        before = order.status
        if not can_transition(before, update.status):
            # Late or duplicate news (a stream update after the REST answer): the ledger keeps
            # the later state. Fill progress in it is still taken.
            log.debug(
                "order.transition_ignored",
                client_id=update.client_id,
                before=before.value,
                after=update.status.value,
            )
        self.ledger.apply_update(update)
        if self.journal is not None:
            self.journal.record_order_update(update)
        if order.status is not before:
            self._emit(
                "order",
                "order.status",
                client_id=update.client_id,
                before=before.value,
                status=order.status.value,
                filled=order.venue_filled,
            )
        self._wake(update.client_id)

    def on_fill(self, account: str, fill: Fill) -> bool:
        """Book a fill once across restarts: with a journal, its answer (new trade id or not)
        decides, so a fill the venue re-sends after a restart (ccxt's trade caches do) does not
        move the position again. True when the position moved."""
        record = self.journal.record_fill(fill, account) if self.journal else FillRecord.NEW
        known = record is FillRecord.KNOWN
        if record is FillRecord.REUSED:
            # Booked as the new trade it is: taken for the old one it would move no position,
            # and the hedger would send the same hedge again.
            self._emit(
                "alert",
                "fill.trade_id_reused",
                account=account,
                symbol=fill.symbol,
                trade_id=fill.trade_id,
                client_id=fill.client_id,
            )
        booked = self.ledger.book_fill(account, fill, known=known)
        if known:
            log.debug(
                "order.fill_already_booked",
                account=account,
                client_id=fill.client_id,
                trade_id=fill.trade_id,
            )
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

    # ---- pricing ------------------------------------------------------------------------------

    def new_client_id(self) -> str:
        """A fresh id for a new intent: `execution.client_id_prefix` + 24 hex digits, so
        alphanumeric and <= 32 characters (the strictest venue rule, OKX clOrdId), and
        recognisable at the venue as ours after a restart."""
        return self.cfg.client_id_prefix + self._unique()

    def limit_price(self, account: str, intent: OrderIntent, ticker: Ticker) -> float | None:
        """The mid-capped limit: the worst price any order for this intent may be sent at,
        which is what the risk gate's collar and notional are checked with."""
        mid = ticker.mid
        if mid is None or mid <= 0:
            return None
        ins = self.instruments[(account, intent.symbol)]
        cfg = self.cfg.for_symbol(intent.symbol)
        return marketable_limit(intent.side, mid, cfg.max_slippage_bps, ins)

    def fresh_book(self, key: LineKey, book: OrderBook | None = None) -> OrderBook | None:
        """The given (or latest) book if it is recent enough to price from, else None."""
        # The newest of: the caller's book, the engine's live book, the last one seen here.
        candidates = [b for b in (book, self.books.get(key), self._seen_books.get(key)) if b]
        if not candidates:
            return None
        book = max(candidates, key=lambda b: b.ts_ms)
        self._seen_books[key] = book
        if book.mid is None:
            return None
        cfg = self.cfg.for_symbol(key[1])
        if self.clock.now_ms() - book.ts_ms > cfg.book_max_age_s * 1000:
            return None
        return book

    def plan_taker(
        self,
        account: str,
        symbol: str,
        side: Side,
        amount: float,
        book: OrderBook | None,
        ticker_mid: float | None,
    ) -> TakerPlan:
        """Price and size one taker order, or raise Refusal with the rule and numbers."""
        cfg = self.cfg.for_symbol(symbol)
        return plan_taker(cfg, self.instruments[(account, symbol)], side, amount, book, ticker_mid)

    # ---- opening and finishing orders ---------------------------------------------------------

    def _open(
        self, account: str, intent: OrderIntent, price: float, post_only: bool = False
    ) -> TrackedOrder:
        """Journal the intent and put its order in the ledger, before anything is sent."""
        request = OrderRequest(
            client_id=intent.client_id,
            symbol=intent.symbol,
            side=intent.side,
            amount=intent.amount,
            price=price,
            post_only=post_only,
            reduce_only=intent.reduce_only,
        )
        now = self.clock.now_ms()
        if self.journal is not None:
            self.journal.record_intent(intent, now)  # before anything can reach the venue
        return self.ledger.open(account, intent, request, now)

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
        self._wake(order.intent.client_id)

    def _outcome(self, order: TrackedOrder, accepted: bool) -> None:
        if self.on_outcome is not None:
            self.on_outcome(order, accepted)

    def _refuse(self, intent: OrderIntent, rule: str, **numbers: object) -> None:
        self.orders_refused += 1
        # Merged, the order's fields last: a rule's numbers naming one of them cannot clash.
        self._emit("reject", "order.refused", **(numbers | intent.fields() | {"rule": rule}))

    def _out(self, commands: list[Command]) -> None:
        """Carry out commands that no driver call waits for (from timers, wakes, submit,
        adopt): the facade hands them to its driver."""
        raise NotImplementedError

    def _on_idle(self) -> None:
        """No order or parent is being worked any more."""

    # ---- telling ------------------------------------------------------------------------------

    def _wake(self, client_id: str) -> None:
        """The order changed: its follow-up, if waiting on it, looks again (placement.py)."""

    def _emit(self, kind: EventKind, name: str, **data: object) -> None:
        self.bus.emit(Event(kind, name, self.clock.now_ms(), data))
