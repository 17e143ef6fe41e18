"""Why an underlying may not trade now (paused, the risk state, disabled, missing or stale data,
a feed problem, missing IVs or venue deltas), the operator's pause, and the events when that
reason changes."""

from __future__ import annotations

from collections.abc import Callable

from bot.clock import Clock
from bot.config import Settings
from bot.core import risk
from bot.hedger.feeds import FeedHealth
from bot.hedger.risk_gate import RiskGate
from bot.hedger.view import MarketView

Emit = Callable[..., None]


class Halts:
    def __init__(
        self,
        settings: Callable[[], Settings],
        clock: Clock,
        view: MarketView,
        feeds: FeedHealth,
        risk_gate: RiskGate,
        emit: Emit,
    ) -> None:
        self._settings = settings
        self._clock = clock
        self._view = view
        self._feeds = feeds
        self._risk = risk_gate
        self._emit = emit
        self.paused = False  # by the operator: nothing trades until resumed
        self.reasons: dict[str, str | None] = {}  # the last reason each decision saw

    def halted(self, underlying: str) -> bool:
        return self.reason(underlying) is not None

    def reason(self, underlying: str) -> str | None:
        if self.paused:
            return "paused"
        if self._risk.state.trading_state is risk.TradingState.HALTED:
            return f"halted:{self._risk.state.state_reason}"
        settings, view = self._settings(), self._view
        h = settings.hedge[underlying]
        if not h.enabled:
            return "disabled"
        now = self._clock.now_ms()
        ref = view.tickers.get((h.account, h.instrument))
        if ref is None:
            return "no_market_data"
        if now - ref.ts_ms > settings.engine.stale_after_s * 1000:
            return "stale_market_data"
        feeds = self._feeds.problem(underlying, view.accounts_of(underlying), now)
        if feeds is not None:
            return feeds
        if view.missing_iv(underlying):
            return "no_option_iv"
        if settings.engine.greeks_source == "venue":
            cols = view.columns_of(underlying)
            for i in cols.opt.tolist():
                key = cols.keys[i]
                t = view.ticker_for(key)
                if t is not None and t.venue_delta is None and view.held(key):
                    return "no_venue_delta"
        return None

    def check(self, underlying: str) -> str | None:
        """The reason a decision sees now, announced when it changed."""
        reason = self.reason(underlying)
        if self.reasons.get(underlying) != reason:
            self._changed(underlying, reason)
        return reason

    def _changed(self, underlying: str, reason: str | None) -> None:
        first = underlying not in self.reasons
        self.reasons[underlying] = reason
        if reason is None:
            self._emit("state", "trading.resumed", underlying=underlying)
        elif first and reason == "no_market_data":
            # Start-up, before the first tick: waiting, not an outage. Data that goes missing
            # later is stale (an alert), never "no data" again.
            self._emit("state", "trading.waiting", underlying=underlying, reason=reason)
        elif reason != "paused":
            self._emit("alert", "trading.halted", underlying=underlying, reason=reason)
