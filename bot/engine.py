"""The engine: one asyncio loop from feeds to book to policy to planner to risk to executor.

Streams only store the newest data and mark underlyings dirty; the decision loop then evaluates
each dirty underlying once with the latest data, so a burst of ticks costs one decision
(stale ticks are coalesced, never queued).
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, TypeVar

import structlog

from bot.clock import Clock
from bot.config import ConfigError, Settings, StreamKind
from bot.core import risk
from bot.core.book import Columns, Exposure, LineKey, exposure, line_greeks
from bot.core.instruments import Instrument, Kind
from bot.core.market import OrderBook, Ticker, UnderlyingMarket
from bot.core.orders import Fill, OrderIntent, OrderStatus, OrderUpdate, PositionReport, Side
from bot.core.planner import contracts_for, plan
from bot.core.policy import HedgeDecision, TriggerPolicy, decide
from bot.core.risk import OrderCheck
from bot.events import Event, EventBus, EventKind
from bot.execution import recovery
from bot.execution.executor import Executor
from bot.execution.ledger import Ledger, TrackedOrder
from bot.io.journal import Journal
from bot.operator import OperatorControls
from bot.policy_config import policy_for
from bot.tasks import cancel_all
from bot.venues.base import Venue, VenueError, VenueNotSupported

log = structlog.get_logger("hedgebot.engine")
T = TypeVar("T")

# A fill and the venue's position report can cross in flight; a venue position that disagrees
# with ours is adopted only when no fill on that line is more recent than this.
FILL_SETTLE_MS = 5_000
# A venue position that has not caught up with our fills is not adopted; after this long the
# account stops trading until it does (see Engine._lagging_read).
POSITION_LAG_MAX_MS = 300_000
# A position message up to this long before the fill message still confirms the fill.
POSITION_RACE_MS = 2_000
# Seconds a quiet account stream's watch must neither fail nor answer to count as resubscribed.
RESUBSCRIBED_S = 2.0
# Streams that speak all the time, so that quiet is staleness (config: stale_after_by_stream).
_STALE_KINDS: dict[str, StreamKind] = {
    "ticker": "ticker",
    "book": "book",
    "positions_poll": "positions_poll",
}


def wall_ms() -> int:
    """External positions expire in real time, whatever the engine's (maybe simulated) clock."""
    return time.time_ns() // 1_000_000


def policy_of(settings: Settings, underlying: str) -> TriggerPolicy:
    return policy_for(settings.hedge[underlying])


@dataclass(slots=True)
class FeedState:
    last_ok_ms: int = 0
    error: str | None = None
    since_ms: int = 0  # when the stream was started: its age counts from here until data comes
    # Since when a watch has been waiting without error or data (quiet timeouts keep it): a
    # watch waiting RESUBSCRIBED_S is subscribed, so messages from then on reach us.
    watching_since_ms: int | None = None


class Engine(OperatorControls):
    def __init__(
        self,
        settings: Settings,
        venues: Mapping[str, Venue],
        clock: Clock,
        bus: EventBus,
        config_path: Path | None = None,
        secrets_file: Path | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.settings = settings
        self.venues = dict(venues)
        self.clock = clock
        self.bus = bus
        self.config_path = config_path
        self.journal = journal
        self.secrets_file = secrets_file
        self.ledger = Ledger()
        self.lines: dict[LineKey, Instrument] = {}
        self.catalog: dict[LineKey, Instrument] = {}
        self.columns: dict[str, Columns] = {}
        self.tickers: dict[LineKey, Ticker] = {}
        self.books: dict[LineKey, OrderBook] = {}
        self.feeds: dict[tuple[str, str], FeedState] = {}
        self.executor = Executor(
            self.venues, self.catalog, self.ledger, bus, clock, settings.execution, journal
        )
        self.paused = False
        # (source, symbol) -> (underlying, qty, delta_coin or None, expires_at wall ms)
        self.external: dict[tuple[str, str], tuple[str, float, float | None, int]] = {}
        self.halt_reasons: dict[str, str | None] = {}
        self.last_decision: dict[str, HedgeDecision] = {}
        self._force: set[str] = set()
        self._flattening: dict[str, int] = {}  # underlying -> flatten orders sent so far
        self._dirty: set[str] = set()
        self._wake = asyncio.Event()
        self._reconcile_now = asyncio.Event()
        self._tasks: list[asyncio.Future[None]] = []
        self._closing = False
        self._bad_data: set[tuple[str, str]] = set()
        self._watched: set[LineKey] = set()
        # Position-stream liveness (see _check_position_streams): account -> clock ms of the
        # first fill still waiting for its position message; last fill time seen per line;
        # when each silent stream was last reset.
        self._awaiting_position: dict[str, int] = {}
        self._fill_marks: dict[LineKey, int] = {}
        self._silent_reset_ms: dict[str, int] = {}
        self.balances: dict[str, dict[str, float]] = {}  # account -> REST balances
        self._fills_at_balance: dict[str, int] = {}  # ledger fill count at the last read
        self._greeks_diverged: dict[str, bool] = {}
        self._last_option_deltas: dict[str, tuple[float, float]] = {}  # own, venue (coin)
        self._unreconciled: set[str] = set()  # accounts that must pass a REST reconcile first
        self.executor.on_settled = self._on_settled
        self.executor.on_outcome = self._on_outcome
        self.executor.books = self.books
        self.executor.gap_of = self.hedge_gap
        self._agreed_position: dict[LineKey, float] = {}  # venue == ours last time, per line
        self._lagging_since: dict[LineKey, int] = {}  # lines whose venue read lags our fills
        self.risk_limits = risk.RiskLimits.from_config(settings.risk)
        self.risk_state = risk.initial_state(settings.risk.initial_state)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        for name, venue in self.venues.items():
            acc = self.settings.accounts[name]
            # Loud on purpose: a live account sends real orders. Alerts log at warning level.
            self._emit(
                "alert" if acc.mode == "live" else "state",
                "account.mode",
                account=name,
                exchange=acc.exchange,
                mode=acc.mode,
                real_orders=acc.mode == "live",
                venue=type(venue).__name__,
            )
            await venue.connect()
            for symbol, ins in (await venue.load_instruments()).items():
                self.catalog[(name, symbol)] = ins
        for u, h in self.settings.hedge.items():
            key = (h.account, h.instrument)
            if key not in self.catalog:
                raise ConfigError(
                    "hedge", [(f"hedge.{u}.instrument", repr(h.instrument), "not listed by venue")]
                )
            if self.catalog[key].kind is Kind.OPTION or self.catalog[key].underlying != u:
                raise ConfigError(
                    "hedge",
                    [
                        (
                            f"hedge.{u}.instrument",
                            repr(h.instrument),
                            f"not a delta-one {u} contract",
                        )
                    ],
                )
            self.lines[key] = self.catalog[key]
            self._watch_book(key)
        # Before any decision: settle what the journal says was in flight (recovery books its
        # fills once); the initial reconciliation then adopts the venue's positions.
        if self.journal is not None:
            await recovery.recover(
                self.executor, self.journal, self.catalog, self._hedge_account, self._emit
            )
        await self.reconcile(initial=True)
        await recovery.report_unknown_orders(self.venues, self.executor, self.journal, self._emit)
        for name, venue in self.venues.items():
            self._spawn(self._stream(name, "orders", venue.watch_orders, self._on_orders, False))
            self._spawn(self._stream(name, "fills", venue.watch_fills, self._on_fills, False))
            self._spawn(
                self._stream(name, "positions", venue.watch_positions, self._on_positions, False)
            )
        self._spawn(self._reconcile_loop())
        self._spawn(self._heartbeat())
        self._emit("state", "engine.started", underlyings=sorted(self.settings.hedge))

    async def run(self, stop: asyncio.Event) -> dict[str, Any]:
        """Decide until `stop` is set; then shut down cleanly and return the summary."""
        await self.start()
        try:
            while not stop.is_set():
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                self._wake.clear()
                if stop.is_set():
                    break
                dirty, self._dirty = self._dirty, set()
                for u in sorted(dirty):
                    try:
                        self.evaluate(u)
                    except Exception as e:
                        # One bad decision sends nothing and must not stop hedging the rest.
                        log.exception("decision.failed", underlying=u, error=repr(e))
                        self._emit("alert", "decision.failed", underlying=u, error=repr(e))
        finally:
            summary = await self.shutdown()
        return summary

    async def shutdown(self) -> dict[str, Any]:
        self._emit("state", "engine.stopping")
        if self.settings.execution.cancel_on_shutdown:
            await self.executor.cancel_all()
        else:
            await self.executor.close()
        open_left = 0
        for name, venue in self.venues.items():
            try:
                open_orders = await self._bounded(venue.fetch_open_orders())
                open_left += sum(1 for o in open_orders if o.client_id in self.ledger.orders)
            except (VenueError, TimeoutError) as e:
                log.warning("shutdown.open_orders_unknown", account=name, error=repr(e))
                open_left = -1
        self._closing = True
        await cancel_all(self._tasks)
        await self.executor.close()
        summary = self.summary(open_left)
        self._emit("state", "daemon.summary", **summary)
        for venue in self.venues.values():
            try:
                await venue.close()
            except Exception as e:
                log.warning("venue.close_failed", venue=venue.name, error=repr(e))
        return summary

    def summary(self, open_orders_left: int) -> dict[str, Any]:
        deltas: dict[str, Any] = {}
        for u in self.settings.hedge:
            exp = self.exposure(u)
            if exp is not None:
                deltas[u] = {"delta_coin": exp.delta_coin, "delta_usd": exp.delta_usd}
        orders = self.ledger.orders.values()
        return {
            "delta": deltas,
            "orders_sent": self.executor.orders_sent,
            "orders_refused": self.executor.orders_refused,
            "orders_filled": sum(1 for o in orders if o.booked > 0),
            "fills": self.ledger.fills_count,
            "fees": dict(self.ledger.fees_paid),
            "open_orders_left": open_orders_left,
        }

    # ---- streams ---------------------------------------------------------------------------

    def _spawn(self, coro: Awaitable[None]) -> None:
        self._tasks.append(asyncio.ensure_future(coro))

    async def _bounded(self, aw: Awaitable[T]) -> T:
        return await asyncio.wait_for(aw, self.clock.to_real(self.settings.engine.stale_after_s))

    async def _stream(
        self,
        account: str,
        name: str,
        watch: Callable[[], Awaitable[T]],
        handle: Callable[[str, T], None],
        quiet_is_stale: bool,
        timeout_s: float | None = None,
    ) -> None:
        """One supervised stream: bounded awaits, backoff with jitter, resubscribe on error.
        `timeout_s` (clock seconds) bounds each await; by default engine.stale_after_s."""
        feed = self.feeds.setdefault((account, name), FeedState())
        feed.since_ms = self.clock.now_ms()
        limit = self.clock.to_real(timeout_s or self.settings.engine.stale_after_s)
        backoff = 0.5
        while not self._closing:
            # After an error a quiet stream is probed with a short bound: see below.
            probing = feed.error is not None and not quiet_is_stale
            if feed.watching_since_ms is None:
                feed.watching_since_ms = self.clock.now_ms()
            try:
                data = await asyncio.wait_for(
                    watch(), min(limit, RESUBSCRIBED_S) if probing else limit
                )
            except TimeoutError:
                if quiet_is_stale:
                    feed.error = "timeout"
                    self._mark_all_dirty()
                elif probing:
                    # An account stream (orders, fills, positions) is quiet while nothing
                    # happens, so after a reconnect no data may ever come to prove it back. A
                    # watch that neither fails nor answers for RESUBSCRIBED_S has connected and
                    # subscribed (ccxt fails a connect or a subscribe at once): it is back.
                    self._stream_recovered(account, name, feed)
                continue
            except VenueNotSupported:
                log.info("stream.not_supported", account=account, stream=name)
                self.feeds.pop((account, name), None)
                if name == "positions":
                    self._poll_positions(account)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                feed.error = repr(e)
                feed.watching_since_ms = None
                self._emit("alert", "stream.error", account=account, stream=name, error=repr(e))
                self._mark_all_dirty()
                await asyncio.sleep(backoff * (0.5 + random.random()))
                backoff = min(backoff * 2, 30.0)
                if name == "positions":
                    self._reconcile_now.set()
                continue
            backoff = 0.5
            if feed.error is not None:
                self._stream_recovered(account, name, feed)
            feed.last_ok_ms = self.clock.now_ms()
            feed.watching_since_ms = None
            try:
                handle(account, data)
            except Exception as e:  # malformed data is logged and dropped, never fatal
                log.exception("stream.handler_failed", account=account, stream=name, error=repr(e))

    def _stream_recovered(self, account: str, name: str, feed: FeedState) -> None:
        feed.error = None
        self._emit("state", "stream.recovered", account=account, stream=name)
        if name in ("orders", "fills", "positions"):
            self._reconcile_now.set()  # after every reconnect: the REST view wins
        self._mark_all_dirty()

    def _watch_ticker(self, key: LineKey) -> None:
        if key in self._watched or key[0] not in self.venues:
            return
        self._watched.add(key)
        venue = self.venues[key[0]]
        self._spawn(
            self._stream(
                key[0],
                f"ticker:{key[1]}",
                lambda: venue.watch_ticker(key[1]),
                self._on_ticker,
                True,
                self._stale_limit_s("ticker"),
            )
        )

    def _watch_book(self, key: LineKey) -> None:
        venue = self.venues[key[0]]
        self._spawn(
            self._stream(
                key[0],
                f"book:{key[1]}",
                lambda: venue.watch_order_book(key[1]),
                self._on_book,
                True,
                self._stale_limit_s("book"),
            )
        )

    def _on_book(self, account: str, book: OrderBook) -> None:
        if self._rejected_data(account, book.symbol, "book", book.problem()):
            return
        self.books[(account, book.symbol)] = book

    def _rejected_data(self, account: str, symbol: str, what: str, problem: str | None) -> bool:
        """Malformed venue data is dropped with an alert (once until that feed is sane again):
        the last good data stays, and staleness halts trading if no good data follows."""
        key = (account, f"{what}:{symbol}")
        if problem is None:
            self._bad_data.discard(key)
            return False
        if key not in self._bad_data:
            self._bad_data.add(key)
            self._emit(
                "alert",
                "market.bad_data",
                account=account,
                symbol=symbol,
                data=what,
                problem=problem,
            )
        return True

    def _on_ticker(self, account: str, ticker: Ticker) -> None:
        key = (account, ticker.symbol)
        if key not in self.catalog:
            return
        if self._rejected_data(account, ticker.symbol, "ticker", ticker.problem()):
            return
        self.tickers[key] = ticker
        self._dirty.add(self.catalog[key].underlying)
        self._wake.set()

    def _on_orders(self, account: str, updates: Sequence[OrderUpdate]) -> None:
        for update in updates:
            self.executor.on_update(account, update)

    def _on_fills(self, account: str, fills: Sequence[Fill]) -> None:
        for fill in fills:
            problem = fill.problem()
            if problem is not None:
                # never booked: REST reconciliation gives the true position instead
                self._emit(
                    "alert",
                    "fill.bad_data",
                    account=account,
                    symbol=fill.symbol,
                    client_id=fill.client_id,
                    trade_id=fill.trade_id,
                    problem=problem,
                )
                self._reconcile_now.set()
                continue
            if self.executor.on_fill(account, fill):
                key = (account, fill.symbol)
                self._ensure_line(key)
                if key in self.catalog:
                    self._dirty.add(self.catalog[key].underlying)
                    self._wake.set()

    def _on_positions(self, account: str, reports: Sequence[PositionReport]) -> None:
        # A streamed position is a hint, not the truth: position streams are known to lag and
        # to report 0 spuriously. A disagreement triggers a REST reconciliation, which wins.
        self._position_heard(account)
        for r in reports:
            if not math.isfinite(r.qty):
                self._emit(
                    "alert", "position.bad_data", account=account, symbol=r.symbol, qty=r.qty
                )
                self._reconcile_now.set()
                continue
            key = (account, r.symbol)
            if abs(self.ledger.positions.get(key, 0.0) - r.qty) > 1e-9:
                self._emit(
                    "alert",
                    "position.stream_disagrees",
                    account=account,
                    symbol=r.symbol,
                    stream=r.qty,
                    ours=self.ledger.positions.get(key, 0.0),
                )
                self._reconcile_now.set()

    def _hedge_account(self, underlying: str) -> str | None:
        h = self.settings.hedge.get(underlying)
        return h.account if h is not None else None

    def hedge_gap(self, underlying: str) -> float | None:
        """Signed hedge contracts that would bring the underlying to its target, counting every
        in-flight order; the executor re-checks it before each TWAP slice."""
        exp = self.exposure(underlying) if underlying in self.settings.hedge else None
        mkt = self.market(underlying) if exp is not None else None
        if exp is None or mkt is None:
            return None
        pol = policy_of(self.settings, underlying)
        h = self.settings.hedge[underlying]
        gap_coin = pol.band_for(exp, mkt, self.clock.now_ms()).gap_coin(exp)
        return contracts_for(gap_coin, self.catalog[(h.account, h.instrument)], exp.price)

    def _on_settled(self, order: TrackedOrder) -> None:
        """Reports where a finished hedge left the delta, then lets the policy look again."""
        underlying = order.intent.underlying
        self._dirty.add(underlying)
        self._wake.set()
        exp = self.exposure(underlying) if underlying in self.settings.hedge else None
        if exp is None or order.booked == 0:
            return
        last = self.last_decision.get(underlying)
        mkt = self.market(underlying) if last is None else None
        if last is not None:
            band = last.bounds
        elif mkt is not None:  # an order recovered at start, settled before any decision
            band = policy_of(self.settings, underlying).band_for(exp, mkt, self.clock.now_ms())
        else:
            return
        hedge = self.catalog[order.key]
        lot_coin = hedge.amount_step * hedge.coin_delta_per_contract(exp.price)
        lot = lot_coin if band.unit == "coin" else lot_coin * exp.price
        delta = exp.delta_in(band.unit)
        self._emit(
            "order",
            "hedge.settled",
            client_id=order.intent.client_id,
            underlying=exp.underlying,
            delta=delta,
            **band.as_dict(),
            lot=lot,
            inside_band=band.contains(delta, slack=lot),
            in_flight_coin=exp.in_flight_coin,
        )

    # ---- reconciliation ---------------------------------------------------------------------

    async def reconcile(self, initial: bool = False) -> None:
        """Positions from REST; the venue wins wherever no order or recent fill is in flight."""
        now = self.clock.now_ms()
        for name, venue in self.venues.items():
            try:
                reports = await self._bounded(venue.fetch_positions())
            except (VenueError, TimeoutError) as e:
                self._emit("alert", "reconcile.failed", account=name, error=repr(e))
                self.feeds.setdefault((name, "rest"), FeedState()).error = repr(e)
                if initial:
                    raise
                continue
            bad = [r for r in reports if not math.isfinite(r.qty)]
            if bad:
                # A venue answer we cannot read wins nothing: keep ours, alert, try next time.
                self._emit(
                    "alert", "reconcile.bad_data", account=name, symbols=[r.symbol for r in bad]
                )
                self.feeds.setdefault((name, "rest"), FeedState()).error = "bad position data"
                if initial:
                    raise VenueError(f"{name}: unreadable positions {[r.symbol for r in bad]}")
                continue
            self.feeds.setdefault((name, "rest"), FeedState()).error = None
            self.feeds[(name, "rest")].last_ok_ms = now
            seen = {(name, r.symbol): r.qty for r in reports}
            for key in set(seen) | {k for k in self.ledger.positions if k[0] == name}:
                venue_qty = seen.get(key, 0.0)
                ours = self.ledger.positions.get(key, 0.0)
                if abs(venue_qty - ours) <= 1e-9:
                    self._position_agrees(key, venue_qty)
                    continue
                busy = any(o.key == key for o in self.ledger.unsettled())
                recent = now - self.ledger.last_fill_ms.get(key, 0) < FILL_SETTLE_MS
                if not initial and (busy or recent):
                    continue  # fills in flight: compare again next time
                if not initial and self._lagging_read(key, venue_qty, ours, now):
                    continue
                self.ledger.adopt_position(key, venue_qty)
                self._position_agrees(key, venue_qty)
                if not initial:
                    self._emit(
                        "alert",
                        "reconcile.position_diff",
                        account=name,
                        symbol=key[1],
                        venue=venue_qty,
                        ours=ours,
                    )
                self._ensure_line(key)
            if not initial:
                await self._reconcile_orders(name, venue)
            await self._reconcile_balances(name, venue)
            self._unreconciled.discard(name)
        for u in self.settings.hedge:
            self._dirty.add(u)
        self._wake.set()

    def _position_agrees(self, key: LineKey, qty: float) -> None:
        self._agreed_position[key] = qty
        if self._lagging_since.pop(key, None) is not None:
            self._emit("state", "position.caught_up", account=key[0], symbol=key[1], qty=qty)
            if not any(k[0] == key[0] for k in self._lagging_since):
                self.feeds.pop((key[0], "positions_lag"), None)

    def _lagging_read(self, key: LineKey, venue_qty: float, ours: float, now: int) -> bool:
        """A venue position between the last one it agreed with us on and ours is a read that
        has not caught up with our own fills (position reads are known to lag, some report 0
        for a while): adopting it would hedge the same drift a second time. Ours is kept; if
        the read still lags after POSITION_LAG_MAX_MS the account stops trading (a stale feed)
        instead of trusting either view."""
        # A line the venue never reported held nothing as far as it said (venues omit zeros).
        base = self._agreed_position.get(key, 0.0)
        if not min(base, ours) - 1e-9 <= venue_qty <= max(base, ours) + 1e-9:
            return False
        first = self._lagging_since.setdefault(key, now)
        if first == now:
            self._emit(
                "alert",
                "position.lagging",
                account=key[0],
                symbol=key[1],
                venue=venue_qty,
                ours=ours,
                agreed=base,
            )
        if now - first > POSITION_LAG_MAX_MS:
            feed = self.feeds.setdefault((key[0], "positions_lag"), FeedState())
            if feed.error is None:
                feed.error = f"venue position of {key[1]} lags our fills"
                self._emit(
                    "alert",
                    "position.lag_halt",
                    account=key[0],
                    symbol=key[1],
                    lagging_ms=now - first,
                )
        return True

    def _ensure_line(self, key: LineKey) -> None:
        if key in self.lines or key not in self.catalog:
            return
        self.lines[key] = self.catalog[key]
        self.columns.pop(self.catalog[key].underlying, None)

    async def _reconcile_loop(self) -> None:
        interval = self.settings.engine.reconcile_interval_s
        while not self._closing:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._reconcile_now.wait(), self.clock.to_real(interval))
            self._reconcile_now.clear()
            try:
                await self.reconcile()
                await recovery.report_unknown_orders(
                    self.venues, self.executor, self.journal, self._emit
                )
            except Exception as e:
                log.exception("reconcile.error", error=repr(e))

    async def _heartbeat(self) -> None:
        """Re-evaluates every second so staleness halts trading even when no data arrives."""
        last_summary = self.clock.now_ms()
        while not self._closing:
            for key in list(self.lines):
                self._watch_ticker(key)
            self._check_kill_file()
            self._check_position_streams()
            await asyncio.sleep(1.0)
            self._mark_all_dirty()
            now = self.clock.now_ms()
            if now - last_summary >= self.settings.engine.summary_interval_s * 1000:
                last_summary = now
                self._emit(
                    "state",
                    "daemon.status",
                    **self.summary(
                        sum(1 for o in self.ledger.unsettled() if not o.status.is_terminal)
                    ),
                )

    def _mark_all_dirty(self) -> None:
        self._dirty.update(self.settings.hedge)
        self._wake.set()

    # ---- stream health ----------------------------------------------------------------------
    #
    # Every stream is one supervised `_stream` task. Market streams (ticker, book) and the
    # position poll are expected to speak all the time: quiet beyond their kind's limit
    # (engine.stale_after_by_stream, default stale_after_s) is staleness. Account streams
    # (orders, fills, positions) are quiet whenever nothing happens, so quiet alone proves
    # nothing; a position stream is checked at the one moment it must speak: after one of our
    # fills changed a position, the venue pushes that position. A fill (booked by any path:
    # stream, REST lookup, recovery) with no position message within engine.position_confirm_s
    # declares the stream silent: the underlyings depending on the account halt, REST
    # reconciles at once, and the venue's sockets are reset (again every few confirm periods)
    # in case the session is stuck. The halt lifts when the stream speaks again and a REST
    # reconcile has passed after that. Venues without a position stream are polled instead.

    def _stale_limit_s(self, kind: StreamKind) -> float:
        eng = self.settings.engine
        return eng.stale_after_by_stream.get(kind, eng.stale_after_s)

    def _poll_positions(self, account: str) -> None:
        """REST positions every engine.position_poll_s where the venue has no position stream
        (Deribit: has['watchPositions'] is false), supervised like a stream: a failed or late
        poll marks the feed down and halts the underlyings depending on the account."""
        venue = self.venues[account]
        interval = self.settings.engine.position_poll_s

        async def poll() -> Sequence[PositionReport]:
            await self.clock.sleep(interval)
            return await venue.fetch_positions()

        log.info("stream.polling", account=account, stream="positions", interval_s=interval)
        self._spawn(
            self._stream(
                account,
                "positions_poll",
                poll,
                self._on_positions,
                True,
                interval + self._stale_limit_s("positions_poll"),
            )
        )

    def _note_fill(self, account: str, fill_ts_ms: int) -> None:
        feed = self.feeds.get((account, "positions"))
        if feed is None or feed.watching_since_ms is None:
            return  # no position stream here (polled), or it is reconnecting
        if fill_ts_ms < feed.watching_since_ms + RESUBSCRIBED_S * 1000:
            # The fill may predate the subscription (ccxt connects inside the first watch,
            # and a message with no watch waiting is not kept): nothing to expect from it.
            return
        if feed.last_ok_ms >= fill_ts_ms - POSITION_RACE_MS:
            return  # the position message already came (it may beat the fill message)
        since = self._awaiting_position.get(account)
        self._awaiting_position[account] = fill_ts_ms if since is None else min(since, fill_ts_ms)

    def _position_heard(self, account: str) -> None:
        self._awaiting_position.pop(account, None)
        if self._silent_reset_ms.pop(account, None) is not None:
            self._emit("state", "stream.recovered", account=account, stream="positions")
            # The stream missed what happened while silent: trade again only after REST.
            self._unreconciled.add(account)
            self._reconcile_now.set()

    def _position_silent(self, account: str, now: int) -> bool:
        since = self._awaiting_position.get(account)
        return since is not None and now - since > self.settings.engine.position_confirm_s * 1000

    def _check_position_streams(self) -> None:
        """Called every heartbeat: notes new fills, declares silent position streams."""
        for key, ts in list(self.ledger.last_fill_ms.items()):
            if self._fill_marks.get(key) != ts:
                self._fill_marks[key] = ts
                self._note_fill(key[0], ts)
        now = self.clock.now_ms()
        retry_ms = 3 * self.settings.engine.position_confirm_s * 1000
        for account in list(self._awaiting_position):
            if not self._position_silent(account, now):
                continue
            last = self._silent_reset_ms.get(account)
            if last is not None and now - last < retry_ms:
                continue
            self._silent_reset_ms[account] = now
            self._emit(
                "alert",
                "stream.silent",
                account=account,
                stream="positions",
                waiting_since_ms=self._awaiting_position[account],
                first=last is None,
            )
            self._reconcile_now.set()
            reset = getattr(self.venues[account], "reset_streams", None)
            if callable(reset):
                reset()
            self._mark_all_dirty()

    def _accounts_of(self, underlying: str) -> set[str]:
        """Accounts an underlying depends on: where it is hedged, and where its lines are held."""
        accounts = {self.settings.hedge[underlying].account}
        accounts.update(a for (a, _), i in self.lines.items() if i.underlying == underlying)
        return accounts & set(self.venues)

    def _feed_problem(self, underlying: str, now: int) -> str | None:
        accounts = self._accounts_of(underlying)
        for (account, stream), feed in self.feeds.items():
            if account not in accounts:
                continue
            kind, _, symbol = stream.partition(":")
            if symbol:
                ins = self.catalog.get((account, symbol))
                if ins is None or ins.underlying != underlying:
                    continue  # another underlying's market data
            if feed.error is not None and kind != "ticker":
                return f"feed_down:{account}:{stream}"
            stale_kind = _STALE_KINDS.get(kind)
            if stale_kind is not None:
                limit = self._stale_limit_s(stale_kind)
                if stale_kind == "positions_poll":
                    limit += self.settings.engine.position_poll_s
                if now - max(feed.last_ok_ms, feed.since_ms) > limit * 1000:
                    return f"stale:{account}:{stream}"
        for account in sorted(accounts):
            if self._position_silent(account, now):
                return f"silent:{account}:positions"
            if account in self._unreconciled:
                return f"reconciling:{account}"
        return None

    # ---- venue greeks -------------------------------------------------------------------------

    def _held(self, key: LineKey) -> bool:
        return abs(self.ledger.positions.get(key, 0.0)) > 1e-12 or any(
            (f"external:{src}", sym) == key for (src, sym) in self.external
        )

    def _option_deltas(
        self, cols: Columns, positions: Mapping[LineKey, float], mkt: UnderlyingMarket
    ) -> tuple[float, float]:
        """(own, venue) option delta in coin over the underlying's option lines. A line whose
        ticker has no venue delta counts its own delta on both sides (halt_reason refuses to
        trade on `venue` greeks with one missing)."""
        g = line_greeks(cols, mkt, self.clock.now_ms(), self.settings.engine.hedge_view)
        own = venue = 0.0
        for i, key in enumerate(cols.keys):
            qty = positions.get(key, 0.0)
            if not cols.is_option[i] or qty == 0.0:
                continue
            mine = qty * float(g.delta[i])
            t = self._ticker_for(key)
            own += mine
            venue += qty * t.venue_delta if t is not None and t.venue_delta is not None else mine
        return own, venue

    def _check_greeks(self, underlying: str) -> None:
        """greeks_source = both: trade on our own greeks, alert when the venue's differ by more
        than greeks_divergence_tol relative to the larger of the two totals and more than
        greeks_divergence_min_coin (so a near-empty book does not alert on noise). Relative,
        because the acceptable model difference grows with the position; one alert per
        crossing, and a state event when they agree again."""
        deltas = self._last_option_deltas.get(underlying)
        if deltas is None:
            return
        own, venue = deltas
        eng = self.settings.engine
        gap = abs(own - venue)
        diverged = gap > eng.greeks_divergence_tol * max(abs(own), abs(venue)) and (
            gap > eng.greeks_divergence_min_coin
        )
        if diverged == self._greeks_diverged.get(underlying, False):
            return
        self._greeks_diverged[underlying] = diverged
        self._emit(
            "alert" if diverged else "state",
            "greeks.diverged" if diverged else "greeks.agree",
            underlying=underlying,
            own_delta_coin=own,
            venue_delta_coin=venue,
            tol=eng.greeks_divergence_tol,
        )

    # ---- REST reconciliation of orders and balances ------------------------------------------

    async def _reconcile_orders(self, name: str, venue: Venue) -> None:
        """Orders we hold open that the venue no longer lists open: the venue's final state is
        read by client id and wins (fed to the executor as any update would be)."""
        try:
            listed = {o.client_id for o in await self._bounded(venue.fetch_open_orders())}
        except (VenueError, TimeoutError) as e:
            self._emit("alert", "reconcile.failed", account=name, what="orders", error=repr(e))
            return
        now = self.clock.now_ms()
        for order in list(self.ledger.unsettled()):
            if order.account != name or order.intent.client_id in listed:
                continue
            if order.status not in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
                continue  # not acknowledged yet, or terminal and waiting for its fills
            if now - order.updated_ms < FILL_SETTLE_MS:
                continue  # just changed: the listing may predate it
            try:
                update = await self._bounded(
                    venue.fetch_order(order.intent.client_id, order.intent.symbol)
                )
            except (VenueError, TimeoutError) as e:
                log.warning(
                    "reconcile.order_lookup_failed", client_id=order.intent.client_id, error=repr(e)
                )
                continue
            if update is None or not update.status.is_terminal:
                continue
            self._emit(
                "alert",
                "reconcile.order_diff",
                account=name,
                client_id=order.intent.client_id,
                ours=order.status.value,
                venue=update.status.value,
                filled=update.filled,
            )
            self.executor.on_update(name, update)

    async def _reconcile_balances(self, name: str, venue: Venue) -> None:
        """Balances by REST (the engine has no balance stream: REST is the only view). A change
        with none of our fills since the last read is logged: funding, transfers, fees of
        someone else's trades, liquidations."""
        try:
            balances = dict(await self._bounded(venue.fetch_balances()))
        except (VenueError, TimeoutError) as e:
            self._emit("alert", "reconcile.failed", account=name, what="balances", error=repr(e))
            return
        before = self.balances.get(name)
        fills = self.ledger.fills_count
        if before is not None and self._fills_at_balance.get(name) == fills:
            changed = {
                c: {"before": before.get(c, 0.0), "venue": balances.get(c, 0.0)}
                for c in sorted(set(before) | set(balances))
                if abs(before.get(c, 0.0) - balances.get(c, 0.0))
                > 1e-9 * max(1.0, abs(before.get(c, 0.0)))
            }
            if changed:
                self._emit("state", "reconcile.balance_diff", account=name, changes=changed)
        self.balances[name] = balances
        self._fills_at_balance[name] = fills

    # ---- deciding ------------------------------------------------------------------------

    def market(self, underlying: str) -> UnderlyingMarket | None:
        h = self.settings.hedge[underlying]
        ref = self.tickers.get((h.account, h.instrument))
        if ref is None:
            return None
        index = ref.index if ref.index is not None else ref.mid
        if index is None or index <= 0:
            return None
        ivs = {}
        for k, ins in self.lines.items():
            t = self._ticker_for(k)
            if ins.underlying == underlying and t is not None and t.iv is not None:
                ivs[k] = t.iv
        return UnderlyingMarket(
            underlying=underlying,
            ts_ms=ref.ts_ms,
            index=index,
            vol=float("nan"),
            rate=self.settings.engine.rate,
            option_iv=ivs,
        )

    def _ticker_for(self, key: LineKey) -> Ticker | None:
        """A line's ticker; lines held outside our venues use a venue's ticker of the symbol."""
        t = self.tickers.get(key)
        if t is not None or key[0] in self.venues:
            return t
        return next((t for (a, s), t in self.tickers.items() if s == key[1]), None)

    def exposure(self, underlying: str) -> Exposure | None:
        mkt = self.market(underlying)
        if mkt is None:
            return None
        cols = self.columns.get(underlying)
        if cols is None:
            cols = self.columns[underlying] = Columns.of(underlying, self.lines)
        positions = dict(self.ledger.positions)
        external = 0.0
        for (source, symbol), (u, qty, delta, _) in self._live_external().items():
            if u != underlying:
                continue
            if delta is not None:
                external += delta
            else:
                # a listed instrument held elsewhere: valued like ours, on its own line
                key = (f"external:{source}", symbol)
                positions[key] = positions.get(key, 0.0) + qty
        exp = exposure(
            cols,
            positions,
            self.ledger.in_flight(),
            mkt,
            self.clock.now_ms(),
            self.settings.engine.hedge_view,
            external,
        )
        if self.settings.engine.greeks_source == "own" or not cols.is_option.any():
            return exp
        own, venue = self._option_deltas(cols, positions, mkt)
        self._last_option_deltas[underlying] = (own, venue)
        if self.settings.engine.greeks_source == "venue":
            # Only the options' delta changes source; delta-one lines are exact either way.
            shift = venue - own
            exp = replace(
                exp,
                delta_coin=exp.delta_coin + shift,
                delta_usd=(exp.delta_coin + shift) * exp.price,
            )
        return exp

    def _live_external(self) -> dict[tuple[str, str], tuple[str, float, float | None, int]]:
        now = wall_ms()
        expired = [k for k, v in self.external.items() if v[3] <= now]
        for k in expired:
            u = self.external.pop(k)[0]
            self._emit("state", "external.expired", source=k[0], symbol=k[1], underlying=u)
            self._dirty.add(u)
        return self.external

    def halt_reason(self, underlying: str) -> str | None:
        if self.paused:
            return "paused"
        if self.risk_state.trading_state is risk.TradingState.HALTED:
            return f"halted:{self.risk_state.state_reason}"
        h = self.settings.hedge[underlying]
        if not h.enabled:
            return "disabled"
        now = self.clock.now_ms()
        stale_ms = self.settings.engine.stale_after_s * 1000
        ref = self.tickers.get((h.account, h.instrument))
        if ref is None:
            return "no_market_data"
        if now - ref.ts_ms > stale_ms:
            return "stale_market_data"
        feeds = self._feed_problem(underlying, now)
        if feeds is not None:
            return feeds
        venue_greeks = self.settings.engine.greeks_source == "venue"
        for key, ins in self.lines.items():
            if ins.underlying == underlying and ins.kind is Kind.OPTION:
                t = self._ticker_for(key)
                if t is None or t.iv is None:
                    return "no_option_iv"
                if venue_greeks and t.venue_delta is None and self._held(key):
                    return "no_venue_delta"
        return None

    def evaluate(self, underlying: str) -> HedgeDecision | None:
        """One decision for one underlying; sends at most one intent."""
        if underlying not in self.settings.hedge:
            return None
        if underlying in self._flattening:
            self._flatten_step(underlying)
            return None
        reason = self.halt_reason(underlying)
        self._note_halt(underlying, reason)
        exp = self.exposure(underlying)
        mkt = self.market(underlying)
        if exp is None or mkt is None:
            return None
        if self.settings.engine.greeks_source == "both":
            self._check_greeks(underlying)
        pol = policy_of(self.settings, underlying)
        force = underlying in self._force
        decision = decide(
            pol,
            exp,
            mkt,
            self.clock.now_ms(),
            order_in_flight=self.ledger.has_unsettled(underlying),
            halted_reason=reason,
            force=force,
            hedge_ratio=self.settings.hedge[underlying].hedge_ratio,
        )
        prev = self.last_decision.get(underlying)
        self.last_decision[underlying] = decision
        if decision.trade or prev is None or prev.reason != decision.reason:
            self._emit(
                "decision",
                "hedge.decision",
                **decision.as_dict(),
                delta_coin=exp.delta_coin,
                gamma_coin=exp.gamma_coin,
            )
        if not decision.trade:
            if force and decision.reason != "order_in_flight":
                self._force.discard(underlying)
            return decision
        self._force.discard(underlying)
        self._send(decision)
        return decision

    def _send(self, decision: HedgeDecision) -> None:
        h = self.settings.hedge[decision.underlying]
        key = (h.account, h.instrument)
        hedge = self.catalog[key]
        ticker = self.tickers[key]
        position = self.ledger.positions.get(key, 0.0)
        result = plan(decision, hedge, decision.price, self.executor.new_client_id(), position)
        if result.intent is None:
            self._emit(
                "decision",
                "hedge.skipped",
                underlying=decision.underlying,
                reason=result.reason,
                contracts=result.contracts,
            )
            return
        self._submit(h.account, result.intent, ticker, hedge)

    def _submit(self, account: str, intent: OrderIntent, ticker: Ticker, ins: Instrument) -> None:
        """Risk gate, then executor. Every rejection is an event with the rule and numbers."""
        price = self.executor.limit_price(account, intent, ticker)
        key = (account, intent.symbol)
        buy = sell = 0.0
        for o in self.ledger.unsettled():
            if o.key == key:
                rest = max(o.expected_fill - o.booked, 0.0)
                if o.intent.side is Side.BUY:
                    buy += rest
                else:
                    sell += rest
        check = OrderCheck(
            symbol=intent.symbol,
            side=intent.side,
            amount=intent.amount,
            price=price if price is not None else 0.0,
            notional_usd=ins.notional_usd(intent.amount, price or 0.0),
            mark=ticker.mark if ticker.mark is not None else (ticker.index or ticker.mid),
            position_before=self.ledger.positions.get(key, 0.0),
            in_flight_buy=buy,
            in_flight_sell=sell,
        )
        now = self.clock.now_ms()
        verdict = risk.check_order(check, self.risk_limits, self.risk_state, now)
        if not verdict.approved:
            self._emit(
                "reject",
                "risk.rejected",
                client_id=intent.client_id,
                underlying=intent.underlying,
                symbol=intent.symbol,
                side=intent.side.value,
                amount=intent.amount,
                **verdict.as_dict(),
            )
            return
        if self.executor.submit(account, intent, ticker, self.books.get(key)) is not None:
            self.risk_state = risk.record_sent(self.risk_state, now, check.notional_usd)

    def _on_outcome(self, order: TrackedOrder, accepted: bool) -> None:
        """Feeds the circuit breaker: venue rejects and send errors count, acceptances reset."""
        now = self.clock.now_ms()
        was_open = self.risk_state.breaker_open
        if accepted:
            self.risk_state = risk.record_success(self.risk_state)
        else:
            self.risk_state = risk.record_failure(self.risk_state, self.risk_limits, now)
        if self.risk_state.breaker_open and not was_open:
            self._emit(
                "alert",
                "risk.breaker_open",
                failures=self.risk_state.consecutive_failures,
                until_ms=self.risk_state.breaker_open_until_ms,
            )

    def _note_halt(self, underlying: str, reason: str | None) -> None:
        before = self.halt_reasons.get(underlying)
        if before == reason:
            return
        first = underlying not in self.halt_reasons
        self.halt_reasons[underlying] = reason
        if reason is None:
            self._emit("state", "trading.resumed", underlying=underlying)
        elif first and reason == "no_market_data":
            # Start-up, before the first tick: waiting, not an outage. Data that goes missing
            # later is stale (an alert), never "no data" again.
            self._emit("state", "trading.waiting", underlying=underlying, reason=reason)
        elif reason != "paused":
            self._emit("alert", "trading.halted", underlying=underlying, reason=reason)

    def _emit(self, kind: EventKind, name: str, **data: Any) -> None:
        self.bus.emit(Event(kind, name, self.clock.now_ms(), data))
