"""The hedger: market data, fills and order updates in; decisions and orders out. Synchronous.

tick -> exposure -> policy -> plan -> risk gate -> executor. Nothing here awaits or reads real
time: the clock is passed in, so the same code runs live (bot/engine.py feeds it from venue
streams) and in a backtest on a virtual clock (bot/backtest). Handlers only store the newest data
and mark underlyings dirty; `decide_dirty` then evaluates each dirty underlying once with the
latest data, so a burst of ticks costs one decision (stale ticks coalesce, never queue).

The parts live beside it: why an underlying may not trade (halts.py), refusing malformed venue
data (bad_data.py), waiting for the book of the same tick (book_wait.py), holding a corridor
after a decision (holding.py, gate.py), sending (sending.py) and the events' data (report.py).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from bot.clock import Clock
from bot.config import ConfigError, Settings
from bot.core.book import Exposure, LineKey
from bot.core.instruments import Instrument, Kind
from bot.core.market import OrderBook, Ticker
from bot.core.orders import Fill, OrderUpdate
from bot.core.planner import contracts_for
from bot.core.policy import (
    HedgeDecision,
    Memory,
    decide,
)
from bot.core.vol import EwmaVol, ewma_update
from bot.events import Event, EventBus, EventKind
from bot.execution.executor import Executor, OrderJournal
from bot.execution.ledger import Ledger, TrackedOrder
from bot.hedger.bad_data import BadData
from bot.hedger.book_wait import BookWait
from bot.hedger.cross import CrossHedges
from bot.hedger.feeds import FeedHealth, FeedKey
from bot.hedger.flatten import flatten_step
from bot.hedger.gate import CorridorGate
from bot.hedger.halts import Halts
from bot.hedger.holding import CorridorHold
from bot.hedger.policies import Policies, needs_stats
from bot.hedger.report import HedgeReport, book_loaded, decision_data
from bot.hedger.risk_gate import RiskGate
from bot.hedger.riskview import RiskView
from bot.hedger.routing import Router
from bot.hedger.sending import Sender
from bot.hedger.view import MarketView
from bot.policy_config import modifiers_for
from bot.venues.base import Venue

log = structlog.get_logger("hedgebot.hedger")


class Hedger:
    def __init__(
        self,
        settings: Settings,
        venues: Mapping[str, Venue],
        catalog: Mapping[LineKey, Instrument],
        clock: Clock,
        bus: EventBus,
        journal: OrderJournal | None = None,
        *,
        wake: Callable[[], None] = lambda: None,
        request_reconcile: Callable[[], None] = lambda: None,
        unique_ids: Callable[[], str] | None = None,
    ) -> None:
        """`wake`: something is dirty (the shell schedules `decide_dirty`); `request_reconcile`:
        venue data we cannot trust arrived (the shell reads positions by REST); `unique_ids`:
        the unique part of client ids (see Executor), random by default."""
        self.settings = settings
        self.clock = clock
        self.bus = bus
        self.catalog = catalog
        self._wake = wake
        self._request_reconcile = request_reconcile
        self.ledger = Ledger()
        self.view = self._view(venues)
        self.feeds = FeedHealth(lambda: self.settings.engine, self._underlyings_of_feed)
        self.gate = CorridorGate(clock)
        self.risk = RiskGate(settings.risk, self.ledger, clock, self.emit, self._trading_changed)
        self.halts = Halts(
            lambda: self.settings, clock, self.view, self.feeds, self.risk, self.emit
        )
        self.cross = CrossHedges(lambda: self.settings, self.view, self.halts.halted, self.emit)
        self.view.cross_coin = self.cross.coin_onto
        self.executor = self._executor(venues, journal, unique_ids)
        self._policies = Policies()
        self.force: set[str] = set()
        self.flattening: dict[str, int] = {}  # underlying -> flatten orders sent so far
        self.book_reported: set[str] = set()  # underlyings whose book.loaded was emitted
        self.last_decision: dict[str, HedgeDecision] = {}
        self.policy_memory: dict[str, Memory] = {}  # the modifiers' memory per underlying
        self.realized_vol: dict[str, EwmaVol] = {}  # EWMA of the hedge instrument's returns
        self._dirty: set[str] = set()
        self.bad_data = BadData(self.emit, request_reconcile)
        self.book_wait = BookWait(catalog, self.view, clock, self.hedge_line, self.mark_dirty)
        self.riskview = RiskView(self)  # scenario grid, VaR and the VaR limit, on a timer
        self.router = Router(
            lambda: self.settings, catalog, self.ledger, self.view.books, self.view.tickers
        )
        self.sender = self._sender()
        self.hold = CorridorHold(
            lambda: self.settings, self._policies, self.view, self.feeds, self.cross, self.gate
        )
        self.report = self._report()

    def _view(self, venues: Mapping[str, Venue]) -> MarketView:
        return MarketView(
            lambda: self.settings,
            set(venues),
            self.catalog,
            self.ledger,
            self.clock,
            self.emit,
            self._lines_changed,
        )

    def _executor(
        self,
        venues: Mapping[str, Venue],
        journal: OrderJournal | None,
        unique_ids: Callable[[], str] | None,
    ) -> Executor:
        """The executor, calling back into the hedger for the gap, settlements and outcomes."""
        return Executor(
            venues,
            self.catalog,
            self.ledger,
            self.bus,
            self.clock,
            self.settings.execution,
            journal,
            books=self.view.books,
            gap_of=self.hedge_gap,
            on_settled=self._on_settled,
            on_outcome=lambda order, accepted: self.risk.on_outcome(order, accepted),
            **({"unique": unique_ids} if unique_ids is not None else {}),
        )

    def _sender(self) -> Sender:
        return Sender(
            self.catalog,
            self.ledger,
            self.executor,
            self.risk,
            self.gate,
            self.view,
            self.router,
            self.clock,
            self.hedge_line,
            self.emit,
            lambda: self.settings.engine.retry_after_refusal_s,
        )

    def _report(self) -> HedgeReport:
        return HedgeReport(
            lambda: self.settings,
            self.clock,
            self.view,
            self._policies,
            self.last_decision,
            self.executor,
            self.cross,
            self.router,
            self.riskview,
        )

    # ---- configuration -----------------------------------------------------------------------

    def apply(self, new: Settings) -> None:
        """A validated new config (reload or set): limits and executor settings apply at once."""
        self.settings = new
        self.executor.cfg = new.execution
        self.risk.apply(new.risk)
        self.feeds.changed()
        self.sender.retry_now()
        self.mark_all_dirty()

    def _trading_changed(self) -> None:
        """A halt, its end or reducing-only changes every decision and what the gate passes."""
        self.gate.clear_all()
        self.sender.retry_now()

    def hedge_line(self, underlying: str) -> LineKey:
        h = self.settings.hedge[underlying]
        return (h.account, h.instrument)

    def add_hedge_lines(self) -> list[LineKey]:
        """The hedge instrument (and routing candidates) of every underlying, checked against
        the venues' listings."""
        keys = []
        for u, h in self.settings.hedge.items():
            for i, key in enumerate(h.lines()):
                field = f"hedge.{u}.instrument" if i == 0 else f"hedge.{u}.candidates"
                value = f"{key[0]}:{key[1]}"
                ins = self.catalog.get(key)
                if ins is None:
                    raise ConfigError("hedge", [(field, value, "not listed by venue")])
                if ins.kind is Kind.OPTION or ins.underlying != u:
                    raise ConfigError("hedge", [(field, value, f"not a delta-one {u} contract")])
                self.view.add_line(key, ins)
                keys.append(key)
        return keys

    def hedge_account(self, underlying: str) -> str | None:
        h = self.settings.hedge.get(underlying)
        return h.account if h is not None else None

    def _lines_changed(self) -> None:
        self.feeds.changed()
        self.gate.clear_all()

    def _underlyings_of_feed(self, key: FeedKey) -> set[str]:
        """A market stream serves its symbol's underlying; an account stream every one."""
        account, stream = key
        symbol = stream.partition(":")[2]
        if not symbol:
            return set(self.settings.hedge)
        ins = self.catalog.get((account, symbol))
        return {ins.underlying} if ins is not None else set()

    # ---- inputs --------------------------------------------------------------------------------

    def request_reconcile(self) -> None:
        self._request_reconcile()

    def mark_dirty(self, underlying: str) -> None:
        self.gate.clear(underlying)
        self._dirty.add(underlying)
        self._wake()

    def mark_all_dirty(self) -> None:
        self.gate.clear_all()
        self._dirty.update(self.settings.hedge)
        self._wake()

    def on_book(self, account: str, book: OrderBook) -> None:
        if self.bad_data.rejected(account, book.symbol, "book", book.problem()):
            return
        key = (account, book.symbol)
        self.view.books[key] = book
        self.book_wait.on_book(key, book)

    def on_ticker(self, account: str, ticker: Ticker) -> None:
        self.on_tickers(account, (ticker,))

    def on_tickers(self, account: str, tickers: Iterable[Ticker]) -> None:
        """An account's tickers in order, each taken as if it came alone (a venue's batch, or
        the backtest's feed of every line at once)."""
        catalog, view, gate, hedge = self.catalog, self.view, self.gate, self.settings.hedge
        rejected = self.bad_data.rejected
        for ticker in tickers:
            key = (account, ticker.symbol)
            ins = catalog.get(key)
            if ins is None:
                continue
            if rejected(account, ticker.symbol, "ticker", ticker.problem()):
                continue
            iv_moved = view.set_ticker(key, ticker)
            h = hedge.get(ins.underlying)
            if h is not None and key == (h.account, h.instrument):
                price = ticker.index if ticker.index is not None else ticker.mid
                before = self.realized_vol.get(ins.underlying, EwmaVol())
                after = ewma_update(before, price or 0.0, ticker.ts_ms, h.policy.vol_half_life_s)
                self.realized_vol[ins.underlying] = after
            if not iv_moved and gate.absorbs(ins.underlying, key, ticker, self.feeds.version):
                continue  # inside the corridor the policy cannot fire: stored, nothing to decide
            self.mark_dirty(ins.underlying)

    def on_orders(self, account: str, updates: Sequence[OrderUpdate]) -> None:
        if updates:
            self.gate.clear_all()  # in-flight amounts may move
        for update in updates:
            self.executor.on_update(account, update)

    def on_fills(self, account: str, fills: Sequence[Fill]) -> None:
        if fills:
            self.gate.clear_all()
        for fill in fills:
            if self.bad_data.fill_rejected(account, fill):
                continue
            if self.executor.on_fill(account, fill):
                key = (account, fill.symbol)
                self.view.equity.on_fill(account, fill, self.catalog.get(key))
                self.view.ensure_line(key)
                if key in self.catalog:
                    self.mark_dirty(self.catalog[key].underlying)

    # ---- deciding ----------------------------------------------------------------------------

    def exposure(self, underlying: str) -> Exposure | None:
        return self.view.exposure(underlying)

    def decide_dirty(self) -> None:
        """One decision for every underlying marked dirty since the last call."""
        dirty, self._dirty = self._dirty, set()
        self.riskview.start()  # armed here, inside the running loop; idempotent
        self.cross.sample()
        dirty |= self.cross.proxies_of(dirty)  # a cross-hedged delta moves its proxies'
        for u in sorted(dirty):
            try:
                self.evaluate(u)
            except Exception as e:
                # One bad decision sends nothing and must not stop hedging the rest.
                log.exception("decision.failed", underlying=u, error=repr(e))
                self.emit("alert", "decision.failed", underlying=u, error=repr(e))

    def evaluate(self, underlying: str) -> HedgeDecision | None:
        """One decision for one underlying; sends at most one intent."""
        if underlying not in self.settings.hedge:
            return None
        if underlying in self.flattening:
            flatten_step(self, underlying)
            return None
        reason = self.halts.check(underlying)
        if reason is None and (
            self._refused_lately(underlying) or self.book_wait.behind(underlying)
        ):
            return None
        policy = self._policies.of(self.settings, underlying)
        seen = self.view.snapshot(underlying, stats=needs_stats(policy))
        if seen is None:
            return None
        exp, mkt = seen
        if underlying not in self.book_reported:
            # Once, at the first exposure (first market data): the book being hedged.
            self.book_reported.add(underlying)
            self.emit("state", "book.loaded", **book_loaded(self.view, exp))
        mkt = replace(mkt, vol=self.realized_vol.get(underlying, EwmaVol()).vol)
        if self.settings.engine.greeks_source == "both":
            self.view.greeks.check(underlying)
        force = underlying in self.force
        hedge = self.settings.hedge[underlying]
        modifiers = modifiers_for(hedge)
        cross = self.cross.report(underlying)
        decision = decide(
            policy,
            exp,
            mkt,
            self.clock.now_ms(),
            order_in_flight=self.ledger.has_unsettled(underlying),
            halted_reason=reason or self.cross.hold_reason(underlying),
            force=force,
            hedge_ratio=hedge.hedge_ratio,
            modifiers=modifiers,
            memory=self.policy_memory.get(underlying),
        )
        self.policy_memory[underlying] = decision.memory
        prev = self.last_decision.get(underlying)
        self.last_decision[underlying] = decision
        routed = self.sender.route(decision)
        if decision.trade or prev is None or prev.reason != decision.reason:
            self.emit("decision", "hedge.decision", **decision_data(decision, exp, cross, routed))
        if not decision.trade:
            if force and decision.reason != "order_in_flight":
                self.force.discard(underlying)
            if decision.reason in ("inside_band", "order_in_flight") and not force:
                self.hold.after(decision, exp)
            return decision
        self.force.discard(underlying)
        self.sender.send(decision, routed)
        return decision

    def _refused_lately(self, underlying: str) -> bool:
        """A trade that sent nothing is not retried on every tick, unless forced (hedge-now)."""
        return underlying not in self.force and self.sender.refused_lately(underlying)

    def hedge_gap(self, underlying: str) -> float | None:
        """Signed hedge contracts that would bring the underlying to its target, counting every
        in-flight order; the executor re-checks it before each TWAP slice."""
        seen = self.view.snapshot(underlying) if underlying in self.settings.hedge else None
        if seen is None:
            return None
        exp, mkt = seen
        band = self._policies.of(self.settings, underlying).band_for(exp, mkt, self.clock.now_ms())
        return contracts_for(
            band.gap_coin(exp), self.catalog[self.hedge_line(underlying)], exp.price
        )

    # ---- outcomes ----------------------------------------------------------------------------

    def _on_settled(self, order: TrackedOrder) -> None:
        """Reports where a finished hedge left the delta, then lets the policy look again."""
        underlying = order.intent.underlying
        self.mark_dirty(underlying)
        report = self.report.band(underlying)
        if report is None or order.booked == 0:
            return
        self.emit("order", "hedge.settled", client_id=order.intent.client_id, **report)

    def emit(self, kind: EventKind, name: str, **data: Any) -> None:
        self.bus.emit(Event(kind, name, self.clock.now_ms(), data))
