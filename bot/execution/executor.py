"""The executor: works one approved intent on its venue until every fill is booked.

Modes, per hedge instrument (`execution.mode`, overridden in `execution.instruments`):
- taker: one marketable limit priced from a walk of the live book. When the expected average
  price is worse than `max_slippage_bps` from mid the order is shrunk to what fits or refused
  (`on_slippage`); with no fresh book it is refused unless `allow_no_book` permits a limit
  capped at mid. Never sent blind.
- maker_first: post-only at the touch, re-priced up to `maker_reprices` times or
  `maker_timeout_s`, then the rest goes as a taker order within the slippage cap.
- twap: an order above `twap_depth_fraction` of the visible depth is sliced over
  `twap_duration_s`; before each slice the engine's gap for the underlying is read again and the
  slicing stops early once the drift is gone.

Every order, slice or re-price, has its own client id: the intent's id for a single taker order,
the intent's id plus a suffix (m1, m2, ..., t, s1, s2, ...) for the children of a maker_first or
twap intent. Each child is journaled as an intent before it is sent; a retry reuses its id.
While a parent works, its unsent rest stays in the ledger as a reservation (an order with no
request), so delta counts the whole intent in flight and the policy does not decide again on
the same drift between slices.

Money-safety rules it keeps (design.md):
- one intent, one client id; the create is never re-sent: an ambiguous create (timeout, network
  error) is resolved by looking the order up by client id;
- the order is in the ledger (and so in delta) before it is sent, and stays until settled;
- every wait is bounded: an order still open after its timeout is cancelled, and fills the
  fill stream has not delivered are fetched from the venue.
- the expected cost (fee + slippage) is checked before each send (bot/execution/pricing.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import uuid
from collections.abc import Awaitable, Callable, Coroutine, Mapping
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import structlog

from bot.clock import Clock
from bot.config import ExecutionConfig
from bot.core.instruments import Instrument
from bot.core.market import OrderBook, Ticker
from bot.core.orders import Fill, OrderIntent, OrderRequest, OrderStatus, OrderUpdate, Side
from bot.events import Event, EventBus, EventKind
from bot.execution import pricing
from bot.execution.ledger import Ledger, TrackedOrder
from bot.execution.stuck import StuckOrders
from bot.tasks import cancel_all
from bot.venues.base import (
    Venue,
    VenueAmbiguous,
    VenueError,
    VenueRejected,
    VenueTransient,
)

T = TypeVar("T")
log = structlog.get_logger("hedgebot.executor")

LineKey = tuple[str, str]
# Signed contracts of the hedge instrument that would bring the underlying to its target,
# counting every in-flight order (reservations included); None when unknown (no market).
GapFn = Callable[[str], float | None]

# The order lifecycle. Updates may skip states (an ack can already say "filled") but never go
# back; a terminal state is final. Anything else is a venue/stream inconsistency: ignored by the
# ledger and reported.
TRANSITIONS: Mapping[OrderStatus, frozenset[OrderStatus]] = {
    OrderStatus.CREATED: frozenset(
        {
            OrderStatus.SENT,
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.SENT: frozenset(
        {
            OrderStatus.OPEN,
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.REJECTED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.OPEN: frozenset(
        {
            OrderStatus.PARTIALLY_FILLED,
            OrderStatus.FILLED,
            OrderStatus.CANCELLED,
            OrderStatus.EXPIRED,
        }
    ),
    OrderStatus.PARTIALLY_FILLED: frozenset(
        {OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.EXPIRED}
    ),
    OrderStatus.FILLED: frozenset(),
    OrderStatus.CANCELLED: frozenset(),
    OrderStatus.REJECTED: frozenset(),
    OrderStatus.EXPIRED: frozenset(),
}


def can_transition(before: OrderStatus, after: OrderStatus) -> bool:
    """True when `after` is a legal next state of `before` (staying put is always legal)."""
    return before is after or after in TRANSITIONS[before]


class OrderJournal(Protocol):
    """What the executor writes to the journal, before and after each step."""

    def record_intent(self, intent: OrderIntent, ts_ms: int) -> None: ...

    def mark_sent(self, request: OrderRequest, ts_ms: int) -> None: ...

    def record_order_update(self, update: OrderUpdate) -> None: ...

    def record_fill(self, fill: Fill, account: str) -> bool: ...


def marketable_limit(side: Side, mid: float, max_slippage_bps: float, ins: Instrument) -> float:
    """A limit price that crosses the spread but never fills worse than the slippage cap."""
    cap = mid * (1 + side.sign * max_slippage_bps / 10_000.0)
    return ins.round_price(cap, up=side is Side.SELL)


@dataclass(frozen=True, slots=True)
class TakerPlan:
    amount: float
    price: float
    mid: float
    walk: pricing.Walk | None  # None when priced from the mid without a book
    cost: pricing.Cost


class Refusal(Exception):
    """A guard refused an order: `rule` and the numbers that broke it."""

    def __init__(self, rule: str, numbers: Mapping[str, object]) -> None:
        super().__init__(rule)
        self.rule = rule
        self.numbers = dict(numbers)


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
        self._changed: dict[str, asyncio.Event] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
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
        known = self.journal is not None and not self.journal.record_fill(fill, account)
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
        ins = self.instruments[(account, symbol)]
        cap = cfg.max_slippage_bps
        walk: pricing.Walk | None = None
        if book is None:
            if not cfg.allow_no_book or ticker_mid is None or ticker_mid <= 0:
                raise Refusal("no_book", {"allow_no_book": cfg.allow_no_book})
            mid = ticker_mid
            price = marketable_limit(side, mid, cap, ins)
            slip = cap  # unknown depth: assume the worst the limit allows
        else:
            full = pricing.walk_book(book, side, amount)
            assert full is not None  # fresh books have a mid
            mid = full.mid
            walk = full
            if not full.complete or full.slippage_bps > cap:
                fit = pricing.fit_slippage(book, side, amount, cap, ins.amount_step)
                assert fit is not None
                numbers = {
                    "requested": amount,
                    "fits": fit.amount,
                    "depth": full.depth,
                    "slippage_bps": full.slippage_bps,
                    "max_slippage_bps": cap,
                    "mid": mid,
                }
                if cfg.on_slippage == "refuse":
                    raise Refusal("max_slippage", numbers)
                if fit.amount < max(ins.min_amount, ins.amount_step) - 1e-12:
                    raise Refusal("max_slippage", {**numbers, "on_slippage": "shrink"})
                walk = fit
            assert walk.worst_price is not None and walk.avg_price is not None
            # The limit is the last level the walk needs: the order takes exactly those levels
            # if the book is unchanged and never anything beyond them if it moved.
            price = ins.round_price(walk.worst_price, up=side is Side.BUY)
            slip = walk.slippage_bps
            amount = walk.amount
        notional = ins.notional_usd(amount, mid)
        cost = pricing.expected_cost(
            notional,
            ins.taker_fee,
            slip,
            notional,  # a delta-one contract removes its own notional of delta
            cfg.cost_sigma,
            cfg.cost_horizon_s,
        )
        refused = pricing.cost_refusal(cost, cfg.max_cost_bps, cfg.cost_risk_ratio)
        if refused is not None:
            raise Refusal(refused[0], refused[1])
        return TakerPlan(amount, price, mid, walk, cost)

    # ---- submitting ---------------------------------------------------------------------------

    def submit(
        self, account: str, intent: OrderIntent, ticker: Ticker, book: OrderBook | None = None
    ) -> TrackedOrder | None:
        """Guard, price and register the intent, then work it in a task. None when refused.
        `book` is the latest order book of the instrument, when the engine has one."""
        if self._stopping:
            self._refuse(intent, "shutting_down")
            return None
        key = (account, intent.symbol)
        ins = self.instruments[key]
        cfg = self.cfg.for_symbol(intent.symbol)
        fee_bps = ins.taker_fee * 10_000.0
        if fee_bps > cfg.max_fee_bps:
            self._refuse(intent, "fee_cap", fee_bps=fee_bps, max_fee_bps=cfg.max_fee_bps)
            return None
        live = self.fresh_book(key, book)
        if ticker.mid is None and live is None:
            self._refuse(intent, "no_mid", symbol=intent.symbol)
            return None
        mode = cfg.mode
        if live is None and mode != "taker":
            mode = "taker"  # maker and twap need depth; the taker path decides on no book
        if mode == "twap" and live is not None:
            full = pricing.walk_book(live, intent.side, intent.amount)
            assert full is not None
            slices = pricing.twap_slices(
                intent.amount,
                full.depth,
                cfg.twap_depth_fraction,
                cfg.twap_max_slices,
                ins.amount_step,
            )
            if slices > 1:
                return self._start_parent(account, intent, "twap", slices, live)
            mode = "taker"
        if mode == "maker_first":
            assert live is not None
            return self._start_parent(account, intent, "maker_first", 0, live)
        try:
            plan = self.plan_taker(
                account, intent.symbol, intent.side, intent.amount, live, ticker.mid
            )
        except Refusal as r:
            self._refuse(intent, r.rule, **r.numbers)
            return None
        if plan.amount < intent.amount - 1e-12:
            self._emit(
                "order",
                "order.shrunk",
                client_id=intent.client_id,
                underlying=intent.underlying,
                symbol=intent.symbol,
                requested=intent.amount,
                amount=plan.amount,
                max_slippage_bps=cfg.max_slippage_bps,
                slippage_bps=plan.walk.slippage_bps if plan.walk else None,
            )
            intent = dataclasses.replace(intent, amount=plan.amount)
        order = self._open(account, intent, plan.price)
        self._spawn(self._work_single(order, plan), intent.client_id)
        return order

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
        order = self.ledger.open(account, intent, request, now)
        self._changed[intent.client_id] = asyncio.Event()
        return order

    def _spawn(self, coro: Coroutine[Any, Any, None], name: str) -> None:
        task = asyncio.create_task(coro, name=f"order-{name}")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

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
        try:
            try:
                update = await self.clock.wait_for(
                    venue.create_order(request), self.cfg.order_timeout_s
                )
                self.on_update(order.account, update)
            except VenueRejected as e:
                self._finish(order, OrderStatus.REJECTED, str(e))
                if report_outcome:
                    self._outcome(order, False)
                return
            except (VenueAmbiguous, VenueTransient, TimeoutError) as e:
                self._emit("alert", "order.ambiguous", client_id=cid, error=repr(e))
                await self._resolve(order)
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

    # ---- stuck orders -------------------------------------------------------------------

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

    async def _wait_for(
        self, order: TrackedOrder, check: Callable[[], bool], wait_s: float
    ) -> bool:
        event = self._changed.get(order.intent.client_id)
        deadline_ms = self.clock.now_ms() + int(wait_s * 1000)
        while not check():
            remaining_s = (deadline_ms - self.clock.now_ms()) / 1000.0
            if remaining_s <= 0 or event is None:
                return check()
            event.clear()
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(event.wait(), remaining_s)
        return True

    # ---- parents: maker_first and twap ---------------------------------------------------------

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
        work = (
            self._work_maker(parent) if mode == "maker_first" else self._work_twap(parent, slices)
        )
        self._spawn(work, intent.client_id)
        return parent

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

    async def _work_maker(self, parent: TrackedOrder) -> None:
        intent = parent.intent
        key = parent.key
        ins = self.instruments[key]
        cfg = self.cfg.for_symbol(intent.symbol)
        lot = max(ins.min_amount, ins.amount_step)
        deadline_ms = self.clock.now_ms() + int(cfg.maker_timeout_s * 1000)
        filled = 0.0
        reason = "filled"
        try:
            for n in range(1, cfg.maker_reprices + 2):
                rest = ins.round_amount(parent.intent.amount)
                if rest < lot or self._stopping or self.clock.now_ms() >= deadline_ms:
                    break
                book = self.fresh_book(key)
                touch = pricing.touch_price(book, intent.side) if book else None
                if book is None or touch is None:
                    break
                child = self._child(parent, f"m{n}", rest, touch, post_only=True)
                wait = min(cfg.maker_reprice_s, max(deadline_ms - self.clock.now_ms(), 0) / 1000.0)
                # Post-only rejects (the touch moved and it would cross) are normal for a maker:
                # they do not feed the circuit breaker.
                await self._place(child, book.mid or touch, wait, report_outcome=False)
                filled += child.booked
                if not child.settled:
                    reason = "child_unsettled"  # still in flight on its own: stop here
                    break
                # What the child did not fill goes back to the reservation for the next try.
                self._reserve(parent, parent.intent.amount + rest - child.venue_filled)
            rest = ins.round_amount(parent.intent.amount)
            if reason == "child_unsettled":
                pass
            elif rest >= lot and not self._stopping:
                book = self.fresh_book(key)
                try:
                    plan = self.plan_taker(
                        parent.account,
                        intent.symbol,
                        intent.side,
                        rest,
                        book,
                        book.mid if book else None,
                    )
                except Refusal as r:
                    self._refuse(intent, r.rule, stage="maker_fallback", **r.numbers)
                    reason = f"fallback_refused:{r.rule}"
                else:
                    self._emit(
                        "order",
                        "order.maker_fallback",
                        client_id=intent.client_id,
                        amount=plan.amount,
                        rest=rest,
                    )
                    child = self._child(parent, "t", plan.amount, plan.price, post_only=False)
                    await self._place(child, plan.mid, cfg.order_timeout_s, cost=plan.cost)
                    filled += child.booked
            elif rest >= lot:
                reason = "stopping"
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("order.work_failed", client_id=intent.client_id, error=repr(e))
            reason = "error"
        self._end_parent(parent, filled, reason)

    async def _work_twap(self, parent: TrackedOrder, slices: int) -> None:
        intent = parent.intent
        key = parent.key
        ins = self.instruments[key]
        cfg = self.cfg.for_symbol(intent.symbol)
        lot = max(ins.min_amount, ins.amount_step)
        per = ins.round_amount(intent.amount / slices)
        interval = cfg.twap_duration_s / slices
        filled = 0.0
        reason = "done"
        try:
            for i in range(1, slices + 1):
                if self._stopping:
                    reason = "stopping"
                    break
                if i > 1:
                    await self.clock.sleep(interval)
                    if self._stopping:
                        reason = "stopping"
                        break
                rest = ins.round_amount(parent.intent.amount)
                need = self._need(parent, rest)
                if need is not None and need < lot:
                    self._emit(
                        "order",
                        "twap.stopped",
                        client_id=intent.client_id,
                        slice=i,
                        slices=slices,
                        need=need,
                        rest=rest,
                        filled=filled,
                        reason="drift_gone",
                    )
                    reason = "drift_gone"
                    break
                amount = rest if i == slices else min(per, rest)
                if need is not None:
                    amount = min(amount, ins.round_amount(need))
                if amount < lot:
                    break
                book = self.fresh_book(key)
                try:
                    plan = self.plan_taker(
                        parent.account,
                        intent.symbol,
                        intent.side,
                        amount,
                        book,
                        book.mid if book else None,
                    )
                except Refusal as r:
                    self._refuse(intent, r.rule, stage="twap_slice", slice=i, **r.numbers)
                    reason = f"slice_refused:{r.rule}"
                    break
                child = self._child(parent, f"s{i}", plan.amount, plan.price, post_only=False)
                await self._place(child, plan.mid, cfg.order_timeout_s, cost=plan.cost)
                filled += child.booked
        except asyncio.CancelledError:
            raise
        except Exception as e:
            log.exception("order.work_failed", client_id=intent.client_id, error=repr(e))
            reason = "error"
        self._end_parent(parent, filled, reason)

    def _need(self, parent: TrackedOrder, rest: float) -> float | None:
        """Contracts the drift still asks for on the parent's side, not counting the parent's own
        unsent rest (which delta counts as in flight); None when the engine cannot say."""
        if self.gap_of is None:
            return None
        gap = self.gap_of(parent.intent.underlying)
        if gap is None:
            return None
        return (gap + parent.intent.side.sign * rest) * parent.intent.side.sign

    # ---- outcomes ---------------------------------------------------------------------------

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
        self._emit(
            "reject",
            "order.refused",
            client_id=intent.client_id,
            underlying=intent.underlying,
            symbol=intent.symbol,
            side=intent.side.value,
            amount=intent.amount,
            rule=rule,
            **numbers,
        )

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

    # ---- shutdown -------------------------------------------------------------------------

    async def cancel_all(self) -> None:
        """Stop starting new children, cancel every order still working and wait (bounded)
        for the outcome."""
        self._stopping = True
        timeout = self.clock.to_real(self.cfg.shutdown_timeout_s)
        for order in list(self.ledger.unsettled()):
            if order.status.is_terminal or order.request is None:
                continue
            await self._cancel(order)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def finish(self) -> None:
        """Let the orders in flight complete (no new decision comes at shutdown), at most
        shutdown_timeout_s; then cancel whatever is still working, like cancel_all."""
        if self._tasks:
            await asyncio.wait(
                list(self._tasks), timeout=self.clock.to_real(self.cfg.shutdown_timeout_s)
            )
        await self.cancel_all()

    async def close(self) -> None:
        self._stopping = True
        await cancel_all(list(self._tasks))

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
