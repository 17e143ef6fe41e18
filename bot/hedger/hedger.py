"""The hedger: market data, fills and order updates in; decisions and orders out. Synchronous.

tick -> exposure -> policy -> plan -> risk gate -> executor. Nothing here awaits or reads real
time: the clock is passed in, so the same code runs live (bot/engine.py feeds it from venue
streams) and in a backtest on a virtual clock (bot/backtest). Handlers only store the newest data
and mark underlyings dirty; `decide_dirty` then evaluates each dirty underlying once with the
latest data, so a burst of ticks costs one decision (stale ticks coalesce, never queue).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from bot.clock import Clock
from bot.config import ConfigError, Settings
from bot.core import risk
from bot.core.book import Exposure, LineKey
from bot.core.instruments import Instrument, Kind
from bot.core.market import OrderBook, Ticker
from bot.core.orders import Fill, OrderUpdate
from bot.core.planner import contracts_for
from bot.core.policy import (
    BandPolicy,
    HedgeDecision,
    Memory,
    Modifiers,
    TriggerPolicy,
    WhalleyWilmott,
    decide,
)
from bot.core.routing import Route
from bot.core.vol import EwmaVol, ewma_update
from bot.events import Event, EventBus, EventKind
from bot.execution.executor import Executor, OrderJournal
from bot.execution.ledger import Ledger, TrackedOrder
from bot.hedger.corridor_grid import CostWidth
from bot.hedger.cross import CrossHedges
from bot.hedger.feeds import FeedHealth, FeedKey
from bot.hedger.flatten import flatten_step
from bot.hedger.gate import CorridorGate
from bot.hedger.policies import Policies
from bot.hedger.report import HedgeReport, book_loaded
from bot.hedger.risk_gate import RiskGate
from bot.hedger.riskview import RiskView
from bot.hedger.routing import Router
from bot.hedger.sending import Sender
from bot.hedger.view import MarketView
from bot.policy_config import modifiers_for
from bot.venues.base import Venue

log = structlog.get_logger("hedgebot.hedger")

# Longest a decision waits for the hedge instrument's book of the same tick (clock ms).
BOOK_WAIT_MS = 1_000


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
        self.view = MarketView(
            lambda: self.settings,
            set(venues),
            catalog,
            self.ledger,
            clock,
            self.emit,
            self._lines_changed,
        )
        self.feeds = FeedHealth(lambda: self.settings.engine, self._underlyings_of_feed)
        self.cross = CrossHedges(
            lambda: self.settings, self.view, lambda u: self.halt_reason(u) is not None, self.emit
        )
        self.view.cross_coin = self.cross.coin_onto
        self.executor = self._executor(venues, journal, unique_ids)
        self.gate = CorridorGate(clock)
        self.risk = RiskGate(settings.risk, self.ledger, clock, self.emit, self.gate.clear_all)
        self._policies = Policies()
        self.paused = False
        self.force: set[str] = set()
        self.flattening: dict[str, int] = {}  # underlying -> flatten orders sent so far
        self.halt_reasons: dict[str, str | None] = {}
        self.book_reported: set[str] = set()  # underlyings whose book.loaded was emitted
        self.last_decision: dict[str, HedgeDecision] = {}
        self.policy_memory: dict[str, Memory] = {}  # the modifiers' memory per underlying
        self.realized_vol: dict[str, EwmaVol] = {}  # EWMA of the hedge instrument's returns
        self._dirty: set[str] = set()
        self._bad_data: set[tuple[str, str]] = set()
        self._book_waits: dict[str, int] = {}  # underlying -> tick a decision waited on
        self.riskview = RiskView(self)  # scenario grid, VaR and the VaR limit, on a timer
        self.router = Router(
            lambda: self.settings, catalog, self.ledger, self.view.books, self.view.tickers
        )
        self.sender = Sender(
            catalog,
            self.ledger,
            self.executor,
            self.risk,
            self.gate,
            self.view,
            self.router,
            clock,
            self.hedge_line,
            self.emit,
        )
        self.report = self._report()

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
        self.mark_all_dirty()

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
        if self._rejected_data(account, book.symbol, "book", book.problem()):
            return
        key = (account, book.symbol)
        self.view.books[key] = book
        ticker = self.view.tickers.get(key)
        ins = self.catalog.get(key)
        if (
            ins is not None
            and ticker is not None
            and book.ts_ms == ticker.ts_ms
            and self._book_waits.get(ins.underlying) == ticker.ts_ms
        ):
            self.mark_dirty(ins.underlying)  # the book a deferred decision waited for

    def on_ticker(self, account: str, ticker: Ticker) -> None:
        self.on_tickers(account, (ticker,))

    def on_tickers(self, account: str, tickers: Iterable[Ticker]) -> None:
        """An account's tickers in order, each taken as if it came alone (a venue's batch, or
        the backtest's feed of every line at once)."""
        catalog, view, gate, hedge = self.catalog, self.view, self.gate, self.settings.hedge
        for ticker in tickers:
            key = (account, ticker.symbol)
            ins = catalog.get(key)
            if ins is None:
                continue
            if self._rejected_data(account, ticker.symbol, "ticker", ticker.problem()):
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
            problem = fill.problem()
            if problem is not None:
                # never booked: REST reconciliation gives the true position instead
                self.emit(
                    "alert",
                    "fill.bad_data",
                    account=account,
                    symbol=fill.symbol,
                    client_id=fill.client_id,
                    trade_id=fill.trade_id,
                    problem=problem,
                )
                self._request_reconcile()
                continue
            if self.executor.on_fill(account, fill):
                key = (account, fill.symbol)
                self.view.equity.on_fill(account, fill, self.catalog.get(key))
                self.view.ensure_line(key)
                if key in self.catalog:
                    self.mark_dirty(self.catalog[key].underlying)

    def _rejected_data(self, account: str, symbol: str, what: str, problem: str | None) -> bool:
        """Malformed venue data is dropped with an alert (once until that feed is sane again):
        the last good data stays, and staleness halts trading if no good data follows."""
        key = (account, f"{what}:{symbol}")
        if problem is None:
            self._bad_data.discard(key)
            return False
        if key not in self._bad_data:
            self._bad_data.add(key)
            self.emit(
                "alert",
                "market.bad_data",
                account=account,
                symbol=symbol,
                data=what,
                problem=problem,
            )
        return True

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

    def halt_reason(self, underlying: str) -> str | None:
        if self.paused:
            return "paused"
        if self.risk.state.trading_state is risk.TradingState.HALTED:
            return f"halted:{self.risk.state.state_reason}"
        h = self.settings.hedge[underlying]
        if not h.enabled:
            return "disabled"
        now = self.clock.now_ms()
        ref = self.view.tickers.get((h.account, h.instrument))
        if ref is None:
            return "no_market_data"
        if now - ref.ts_ms > self.settings.engine.stale_after_s * 1000:
            return "stale_market_data"
        feeds = self.feeds.problem(underlying, self.view.accounts_of(underlying), now)
        if feeds is not None:
            return feeds
        if self.view.missing_iv(underlying):
            return "no_option_iv"
        if self.settings.engine.greeks_source == "venue":
            cols = self.view.columns_of(underlying)
            for i in cols.opt.tolist():
                key = cols.keys[i]
                t = self.view.ticker_for(key)
                if t is not None and t.venue_delta is None and self.view.held(key):
                    return "no_venue_delta"
        return None

    def evaluate(self, underlying: str) -> HedgeDecision | None:
        """One decision for one underlying; sends at most one intent."""
        if underlying not in self.settings.hedge:
            return None
        if underlying in self.flattening:
            flatten_step(self, underlying)
            return None
        reason = self.halt_reason(underlying)
        self._note_halt(underlying, reason)
        if reason is None and self._book_behind(underlying):
            return None
        policy = self._policies.of(self.settings, underlying)
        seen = self.view.snapshot(underlying, stats=_needs_stats(policy))
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
            self._emit_decision(decision, exp, cross, routed)
        if not decision.trade:
            if force and decision.reason != "order_in_flight":
                self.force.discard(underlying)
            if decision.reason in ("inside_band", "order_in_flight") and not force:
                self._hold_corridor(decision, exp)
            return decision
        self.force.discard(underlying)
        self.sender.send(decision, routed)
        return decision

    def _emit_decision(
        self,
        decision: HedgeDecision,
        exp: Exposure,
        cross: dict[str, Any] | None,
        routed: Route | None,
    ) -> None:
        self.emit(
            "decision",
            "hedge.decision",
            **decision.as_dict(),
            delta_coin=exp.delta_coin,
            gamma_coin=exp.gamma_coin,
            **({"cross": cross} if cross is not None else {}),
            **({"route": routed.as_dict()} if routed is not None else {}),
        )

    def _hold_corridor(self, decision: HedgeDecision, exp: Exposure) -> None:
        """For the fixed band (it ignores market and time) and Whalley-Wilmott (its band moves
        with price, gamma and time, which the corridor bounds, and widens with the hedge's cost,
        of which the corridor counts only the fee) on our own greeks (venue deltas move on their
        own); see gate.py."""
        u, eng = decision.underlying, self.settings.engine
        policy = self._policies.of(self.settings, u)
        if (
            not eng.corridor
            or eng.greeks_source != "own"
            or not isinstance(policy, BandPolicy | WhalleyWilmott)
            # A width in another unit than the aim's moves with the price.
            or policy.band_unit not in (None, policy.aim.unit)
            or _remembers(modifiers_for(self.settings.hedge[u]))
            or self.cross.involves(u)  # moves with other underlyings' prices
        ):
            return
        width = None
        if isinstance(policy, WhalleyWilmott):
            mkt = self.view.market(u)
            # In flight its band still moves, and the backtest counts ticks against it.
            if mkt is None or decision.reason != "inside_band":
                return
            k = 1.5 * mkt.hedge_fee / policy.risk_aversion
            width = CostWidth(k, policy.floor, policy.cap)
        ref = self.hedge_line(u)
        self.gate.after_decision(
            decision,
            exp,
            self.view.inputs_of(u),
            self.view.tickers[ref],
            ref,
            eng,
            min(self.feeds.quiet_until(u), self.view.external_until(u)),
            self.feeds.version,
            coin_equity=self.view.equity_moves(u),
            width=width,
        )

    def _book_behind(self, underlying: str) -> bool:
        """The hedge instrument's book is older than the tick that asks for a decision: wait
        for the book of the same moment (its arrival marks the underlying dirty), at most
        BOOK_WAIT_MS, so an order is never priced off an earlier book than the decision saw.
        Streams deliver a tick and its book in either order; this makes the outcome the same."""
        key = self.hedge_line(underlying)
        ticker, book = self.view.tickers.get(key), self.view.books.get(key)
        if ticker is None or book is None or book.ts_ms >= ticker.ts_ms:
            return False
        if self._book_waits.get(underlying) == ticker.ts_ms:
            return False  # waited once for this tick: decide with what there is
        self._book_waits[underlying] = ticker.ts_ms
        self.clock.call_later(BOOK_WAIT_MS / 1000.0, lambda: self.mark_dirty(underlying))
        return True

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

    def _note_halt(self, underlying: str, reason: str | None) -> None:
        before = self.halt_reasons.get(underlying)
        if before == reason:
            return
        first = underlying not in self.halt_reasons
        self.halt_reasons[underlying] = reason
        if reason is None:
            self.emit("state", "trading.resumed", underlying=underlying)
        elif first and reason == "no_market_data":
            # Start-up, before the first tick: waiting, not an outage. Data that goes missing
            # later is stale (an alert), never "no data" again.
            self.emit("state", "trading.waiting", underlying=underlying, reason=reason)
        elif reason != "paused":
            self.emit("alert", "trading.halted", underlying=underlying, reason=reason)

    def emit(self, kind: EventKind, name: str, **data: Any) -> None:
        self.bus.emit(Event(kind, name, self.clock.now_ms(), data))


def _remembers(m: Modifiers) -> bool:
    """Modifiers that act on time or on moves since the last trade: no corridor can hold."""
    return m.time_fallback_ms is not None or m.debounce_ms is not None or m.min_move is not None


def _needs_stats(policy: TriggerPolicy) -> bool:
    """Bands sized from gross notional, gamma, expiry or vol need the book statistics; the
    fixed band in its own unit needs none (they cost a pricing of the option book)."""
    return not isinstance(policy, BandPolicy) or policy.band_unit not in (None, policy.aim.unit)
