"""Holding a corridor after a decision that did not trade: which policies and settings allow
one, and the width Whalley-Wilmott's band adds for the hedge's cost (the corridors themselves:
gate.py)."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import Settings
from bot.core.book import Exposure
from bot.core.policy import BandPolicy, HedgeDecision, Modifiers, WhalleyWilmott
from bot.hedger.corridor_grid import CostWidth
from bot.hedger.cross import CrossHedges
from bot.hedger.feeds import FeedHealth
from bot.hedger.gate import CorridorGate
from bot.hedger.policies import Policies
from bot.hedger.view import MarketView
from bot.policy_config import modifiers_for


class CorridorHold:
    def __init__(
        self,
        settings: Callable[[], Settings],
        policies: Policies,
        view: MarketView,
        feeds: FeedHealth,
        cross: CrossHedges,
        gate: CorridorGate,
    ) -> None:
        self._settings = settings
        self._policies = policies
        self._view = view
        self._feeds = feeds
        self._cross = cross
        self._gate = gate

    def after(self, decision: HedgeDecision, exp: Exposure) -> None:
        """For the fixed band (it ignores market and time) and Whalley-Wilmott (its band moves
        with price, gamma and time, which the corridor bounds, and widens with the hedge's cost,
        of which the corridor counts only the fee) on our own greeks (venue deltas move on their
        own); see gate.py."""
        settings, u = self._settings(), decision.underlying
        eng = settings.engine
        policy = self._policies.of(settings, u)
        if (
            not eng.corridor
            or eng.greeks_source != "own"
            or not isinstance(policy, BandPolicy | WhalleyWilmott)
            # A width in another unit than the aim's moves with the price.
            or policy.band_unit not in (None, policy.aim.unit)
            or _remembers(modifiers_for(settings.hedge[u]))
            or self._cross.involves(u)  # moves with other underlyings' prices
        ):
            return
        width = None
        if isinstance(policy, WhalleyWilmott):
            mkt = self._view.market(u)
            # In flight its band still moves, and the backtest counts ticks against it.
            if mkt is None or decision.reason != "inside_band":
                return
            k = 1.5 * mkt.hedge_fee / policy.risk_aversion
            width = CostWidth(k, policy.floor, policy.cap)
        h = settings.hedge[u]
        ref = (h.account, h.instrument)
        self._gate.after_decision(
            decision,
            exp,
            self._view.inputs_of(u),
            self._view.tickers[ref],
            ref,
            eng,
            min(self._feeds.quiet_until(u), self._view.external_until(u)),
            self._feeds.version,
            coin_equity=self._view.equity_moves(u),
            width=width,
        )


def _remembers(m: Modifiers) -> bool:
    """Modifiers that act on time or on moves since the last trade: no corridor can hold."""
    return m.time_fallback_ms is not None or m.debounce_ms is not None or m.min_move is not None
