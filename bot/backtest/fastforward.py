"""Fast-forward over a backtest path's quiet ticks: the same results without the loop, the venue's
tick or the hedger's feed at each of them.

A tick is quiet when nothing but prices moves and every decision it would bring is provably the
one already made: no callback ready and no timer due but the risk view's (a run that would find
nothing to do only moves its timer; one that samples or recomputes is made inside the span, as
its timer would make it, when no VaR limit can act on its figures, after the hedger gets the
last quiet tick's index); no order working or in flight and no expiry at the sim exchanges;
every hedged underlying held in its trigger corridor (bot/hedger/gate.py: the same feeds, fresh
data) with its new index inside [lo, hi] and the options' IVs unchanged. The market is stepped
by the exchange's own model with the same draws (Lookahead): the step that ends a span is the
one the exchange's next tick takes, so a seed gives the same path either way.

Each quiet tick is booked as a full tick books it: attribution against the book held at the
previous price (view.held_span over the span, or view.snapshot tick by tick), decision counts
and series samples (against the one decision in force), the hedge line's realized-vol EWMA
(ewma_fold, ewma_update's floats). The span's last tick is fed to the hedger as a full tick (so
the view, books, gate and feeds stand where they would), and the loop's time and the risk
view's timer are left where the full ticks would have left them.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

import numpy as np

from bot.backtest import ticks
from bot.backtest.lookahead import Lookahead
from bot.backtest.quoted import stay_quoted
from bot.backtest.recorder import Recorder
from bot.backtest.span import At, Ref, Span
from bot.clock import VirtualClock
from bot.core.book import LineKey
from bot.core.market import UnderlyingMarket
from bot.core.vol import EwmaVol, ewma_fold
from bot.hedger.hedger import Hedger
from bot.hedger.riskview import idle
from bot.venues.sim import SimVenue

if TYPE_CHECKING:
    from bot.backtest.path import PathResult


@dataclass(frozen=True, slots=True)
class PathParts:
    """The running path's parts the fast-forward reads and moves."""

    hedger: Hedger
    venues: dict[str, SimVenue]
    clock: VirtualClock
    recorder: Recorder
    hedge_lines: list[LineKey]
    underlyings: list[str]  # sorted hedged underlyings
    start_ms: int
    tick_ms: int
    detail: bool


class FastForward:
    def __init__(self, parts: PathParts) -> None:
        self.p = parts
        self.look: dict[str, Lookahead] = {}
        for name, v in parts.venues.items():
            la = Lookahead(v.exchange.model)
            v.exchange.use_model(la)
            self.look[name] = la
        self._slot = {
            name: {u: i for i, u in enumerate(la.names)} for name, la in self.look.items()
        }

    def run(
        self, t0: int, end_ms: int, result: PathResult, on_tick: Callable[[int], None] | None
    ) -> int:
        """Skip the quiet ticks after `t0` (the last tick done, before `end_ms`'s); returns
        the last tick done."""
        if result.ticks == 0 or not self._eligible():
            return t0
        span = self._span(t0, end_ms, result)
        if span.n == 0:
            return t0
        self._finish(span, result)
        if on_tick is not None:
            on_tick(result.ticks)
        return span.end

    def _eligible(self) -> bool:
        p = self.p
        h = p.hedger
        if h.executor.busy or h.ledger.in_flight():
            return False
        if p.detail and (h.settings.engine.greeks_source != "own" or h.view.external):
            return False
        if any(v.exchange.quiet_until_ms() is None for v in p.venues.values()):
            return False
        if h.riskview.timer is None:
            return False
        lines = {h.catalog[k].underlying for k in h.view.lines if k in h.catalog}
        if not lines <= set(p.underlyings):
            return False
        for u in p.underlyings:
            held = h.gate.held.get(u)
            if held is None or held.feeds_version != h.feeds.version:
                return False
            if held.ref not in h.view.lines or held.ref[0] not in p.venues:
                return False
            if p.tick_ms > held.stale_ms and self._fed_before_ref(u, held.ref):
                return False
        return True

    def _fed_before_ref(self, u: str, ref: LineKey) -> bool:
        """Is a line of `u` fed before its ref line? gate.absorbs then checks the age of the
        previous tick's ref ticker."""
        h = self.p.hedger
        for key in h.view.lines:
            if key == ref:
                return False
            ins = h.catalog.get(key)
            if ins is not None and ins.underlying == u and key[0] in self.p.venues:
                return True
        return False

    def _span(self, t0: int, end_ms: int, result: PathResult) -> Span:
        """Step the market over the quiet ticks after `t0`, tick by tick with the model's own
        draws, until one is not quiet (its step stays peeked for the exchange's tick)."""
        p = self.p
        h, clock = p.hedger, p.clock
        timer = h.riskview.timer
        assert isinstance(timer, asyncio.TimerHandle)
        refs, span, at = self._start(t0, timer)
        expiry = min(v.exchange.quiet_until_ms() or 0 for v in p.venues.values())
        horizon = min(end_ms, expiry, _ms_at(clock, at.others, t0))
        if not stay_quoted(p.venues, h.view.lines, {r.u: (r.lo, r.hi) for r in refs}, horizon):
            return span  # an option's ticker could turn bad (an alert) within the span
        inside = all(h.view.spans(u) for u in p.underlyings)
        vector = p.detail and inside
        no_limit = h.settings.risk.var_limit_usd is None  # a risk run cannot move the state
        markets, ivs = self._markets() if p.detail else ({}, {})
        while at.t < end_ms:
            nt = at.t + p.tick_ms
            if nt >= expiry:
                break
            when = clock.when_of(nt)
            # The risk view's runs before this tick (they see the previous tick's index).
            fired = at.rv_when <= when
            w = self._idle_runs(at, when)
            if w <= when and not (inside and no_limit):
                break
            # advance_to: a jump when idle, else a sleep whose end is computed from now.
            target = at.now_s + (when - at.now_s) if fired else when
            if not at.others > target:
                break
            steps = self._peek(at.prices, at.t, nt)
            if steps is None:
                break
            index = {r.u: steps[r.venue][r.slot] for r in refs}
            if any(not r.lo <= index[r.u] <= r.hi for r in refs):
                break
            # This tick is quiet: the runs before it that sample or recompute are made here.
            if w <= when:
                after = self._risk_runs(at, w, when, span)
                if after is None:
                    break
                w = after
            for la in self.look.values():
                la.take()
            at.prices = steps
            at.rv_when, at.now_s = w, target
            if p.detail and not vector:
                clock.loop.jump(at.now_s)  # the clock reads nt (equity marks coin-settled options)
                self._attribute_tick(at, nt, index, markets, ivs, result)
            for u, x in index.items():
                span.index[u].append(x)
            span.n += 1
            at.prev, at.t = index, nt
        self._close(span, at, timer, ivs if vector else None, result)
        return span

    def _close(
        self,
        span: Span,
        at: At,
        timer: asyncio.TimerHandle,
        ivs: dict[str, float] | None,
        result: PathResult,
    ) -> None:
        """Move the venues and the loop to the span's last tick, book its attribution at once
        (`ivs`: when vectorized) and leave the risk view's timer where its runs left it."""
        if span.n:
            self._commit(span, at.prices)
            self.p.clock.loop.jump(at.now_s)
            if ivs is not None:
                self._attribute(span, ivs, result)
        if at.rv_when != timer.when():
            self.p.hedger.riskview.reschedule(at.rv_when)

    def _start(self, t0: int, timer: asyncio.TimerHandle) -> tuple[list[Ref], Span, At]:
        """Each underlying's corridor and index source, the empty span, and where things stand."""
        p = self.p
        h, clock = p.hedger, p.clock
        held = [h.gate.held[u] for u in p.underlyings]
        refs = [
            Ref(u, x.ref[0], self._slot[x.ref[0]][u], x.lo, x.hi)
            for u, x in zip(p.underlyings, held, strict=True)
        ]
        prev = {r.u: p.venues[r.venue].exchange.quotes.index(r.u) for r in refs}
        span = Span(t0, p.tick_ms, prev, {u: [] for u in p.underlyings})
        at = At(
            t0,
            clock.loop_now(),
            timer.when(),
            h.riskview.idle_basis(),
            clock.loop.quiet_until(ignore=timer),
            prev,
            {n: list(v.exchange.quotes.prices) for n, v in p.venues.items()},
        )
        return refs, span, at

    def _attribute_tick(
        self,
        at: At,
        nt: int,
        index: dict[str, float],
        markets: dict[str, UnderlyingMarket],
        ivs: dict[str, float],
        result: PathResult,
    ) -> None:
        """One quiet tick's attribution, against the book held at the previous tick's index."""
        p = self.p
        for u in p.underlyings:
            m = replace(markets[u], index=at.prev[u], ts_ms=at.t)
            was = ticks.held(p.hedger, u, at=(m, nt))
            if was is not None:
                result.attribution.step(was[0], was[1], index[u], ivs[u], p.tick_ms)

    def _idle_runs(self, at: At, when: float) -> float:
        """The loop time of the risk view's first run from `at.rv_when` on that would sample
        or recompute (those before it only move its timer), or of the first after `when`."""
        clock, rv = self.p.clock, self.p.hedger.riskview
        w = at.rv_when
        while w <= when and at.basis is not None and idle(at.basis, clock.ms_of(w), at.prev):
            w += rv.period_s
        return w

    def _risk_runs(self, at: At, w: float, when: float, span: Span) -> float | None:
        """Make the risk view's runs from loop time `w` to `when` (before a quiet tick) as its
        timer would: the hedger first gets the last quiet tick's index, as a full tick gave it.
        Returns the time of the first run after `when`, or None to end the span: the fed tick
        was not absorbed (it decides; the run is left to the full path), or a run left a
        callback ready (not without a VaR limit: the trading state cannot move)."""
        clock, rv = self.p.clock, self.p.hedger.riskview
        while w <= when:
            if at.basis is None or not idle(at.basis, clock.ms_of(w), at.prev):
                if span.n > span.fed:
                    self._commit(span, at.prices)
                    clock.loop.jump(at.now_s)
                    self._feed_last(span)
                    if clock.loop.quiet_until(ignore=rv.timer) != at.others:
                        return None
                clock.loop.jump(w)
                rv.run_safely()
                at.basis, at.rv_when = rv.idle_basis(), w + rv.period_s
                if clock.loop.quiet_until(ignore=rv.timer) != at.others:
                    return None
            w += rv.period_s
        return w

    def _attribute(self, span: Span, ivs: dict[str, float], result: PathResult) -> None:
        """The span's attribution in one go: each tick's move against the book's greeks at
        the previous tick's index (view.held_span), as the full ticks book it one by one."""
        now = np.array(span.times(0, span.n), dtype=np.int64)
        for u in self.p.underlyings:
            price = np.array(span.index[u])
            s = np.concatenate(([span.first[u]], price[:-1]))
            g = self.p.hedger.view.held_span(u, s, now)
            if g is not None:
                result.attribution.steps(s, price, g, ivs[u], ivs[u], self.p.tick_ms)

    def _markets(self) -> tuple[dict[str, UnderlyingMarket], dict[str, float]]:
        view = self.p.hedger.view
        markets: dict[str, UnderlyingMarket] = {}
        ivs: dict[str, float] = {}
        for u in self.p.underlyings:
            m = view.market(u)
            mi = view.market_with_ivs(u)
            assert m is not None and mi is not None  # a corridor is held: it decided on one
            markets[u], ivs[u] = m, ticks.mean_iv(mi)
        return markets, ivs

    def _peek(
        self, prices: dict[str, list[float]], t: int, nt: int
    ) -> dict[str, list[float]] | None:
        """Draw every venue's step from `t` to `nt`; None when a model's vols moved (options'
        IVs)."""
        out: dict[str, list[float]] = {}
        quiet = True
        for name, v in self.p.venues.items():
            out[name], moved = self.look[name].peek(prices[name], t, nt, v.exchange.market_rng)
            quiet = quiet and not moved
        return out if quiet else None

    def _commit(self, span: Span, prices: dict[str, list[float]]) -> None:
        """The venues to the span's last tick, as its ticks would have left them."""
        for name, v in self.p.venues.items():
            v.quiet_tick(prices[name], span.end, span.n - span.committed)
        span.committed = span.n

    def _feed_last(self, span: Span) -> None:
        """The span's last tick's index to the hedger as a full tick brings it (the ticks
        before it folded into the realized vol; the gate's ref time, the view's market). The
        other lines' tickers and the books are left: the next full tick's feed replaces them
        before anything reads them (own greeks: the options are valued from the view's IVs,
        which did not move)."""
        h, p = self.p.hedger, self.p
        times = span.times(span.fed, span.n - 1)
        for u in p.underlyings:
            if times:
                half_life = h.settings.hedge[u].policy.vol_half_life_s
                before = h.realized_vol.get(u, EwmaVol())
                index = span.index[u][span.fed : span.n - 1]
                h.realized_vol[u] = ewma_fold(before, index, times, half_life)
            account, symbol = h.gate.held[u].ref
            h.on_ticker(account, p.venues[account].exchange.ticker(symbol))
        span.fed = span.n

    def _finish(self, span: Span, result: PathResult) -> None:
        """Book the span's ticks as full ticks book them: all but the last at once (nothing
        but the index moved, so each counts against the same decision), then the last, fed to
        the hedger as a full tick brings it, after its decision."""
        p = self.p
        h = p.hedger
        if span.n > 1:
            self._book(span.times(0, span.n - 1), result)
        if span.fed < span.n:
            self._feed_last(span)
        if h.settings.engine.greeks_source != "own":
            ticks.feed(h, p.venues, p.hedge_lines)  # venue greeks read every option's ticker
        h.decide_dirty()
        self._book([span.end], result)

    def _book(self, times: list[int], result: PathResult) -> None:
        """Ticks at `times`, with no decision between them, counted and sampled."""
        p = self.p
        first = result.ticks + 1
        ticks.note(result, p.hedger, p.underlyings, len(times))
        result.ticks += len(times)
        if not p.detail:
            return
        for n in result.series.wanted(first, result.ticks):
            hours = (times[n - first] - p.start_ms) / 3_600_000
            ticks.sample(result, p.hedger, p.recorder, p.underlyings[0], hours)


def _ms_at(clock: VirtualClock, when_s: float, now_ms: int) -> int:
    """Clock ms of loop time `when_s` (+inf: none; -inf, something ready: now)."""
    if when_s == math.inf:
        return 2**62
    return clock.ms_of(when_s) if math.isfinite(when_s) else now_ms
