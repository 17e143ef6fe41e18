"""What the operator reads about the book: the lines held and the greeks of one underlying
(`book.loaded`), what each decision saw (`hedge.decision`), where a delta stands against its
band (`hedge.settled`) and the periodic summary of the whole book."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from bot.clock import Clock
from bot.config import Settings
from bot.core.book import Exposure
from bot.core.policy import HedgeDecision
from bot.core.routing import Route
from bot.hedger.view import MarketView

if TYPE_CHECKING:
    from bot.execution.executor import Executor
    from bot.hedger.cross import CrossHedges
    from bot.hedger.policies import Policies
    from bot.hedger.riskview import RiskView
    from bot.hedger.routing import Router


def book_loaded(view: MarketView, exp: Exposure) -> dict[str, Any]:
    """The `book.loaded` event's data: every line of the underlying held (ours by account,
    others' as external:<source>), its quantity in contracts, and the underlying's greeks."""
    u = exp.underlying
    lines = [
        {"account": acc, "symbol": sym, "qty": view.ledger.positions.get((acc, sym), 0.0)}
        for (acc, sym), ins in sorted(view.lines.items())
        if ins.underlying == u and abs(view.ledger.positions.get((acc, sym), 0.0)) > 1e-12
    ]
    for (source, sym), ext in sorted(view.live_external().items()):
        if ext.underlying == u:
            lines.append({"account": f"external:{source}", "symbol": sym, "qty": ext.qty})
    return {
        "underlying": u,
        "price": exp.price,
        "lines": lines,
        "delta_coin": exp.delta_coin,
        "delta_usd": exp.delta_usd,
        "gamma_coin": exp.gamma_coin,
        "vega_usd": exp.vega_usd,
        "theta_usd": exp.theta_usd,
    }


def decision_data(
    decision: HedgeDecision, exp: Exposure, cross: dict[str, Any] | None, routed: Route | None
) -> dict[str, Any]:
    """The `hedge.decision` event's data: the decision, the greeks it saw, the cross hedge
    and the route when there are."""
    return {
        **decision.as_dict(),
        "delta_coin": exp.delta_coin,
        "gamma_coin": exp.gamma_coin,
        **({"cross": cross} if cross is not None else {}),
        **({"route": routed.as_dict()} if routed is not None else {}),
    }


class HedgeReport:
    """Where each delta stands against its band, and the summary of the book: deltas, cross
    hedges and routing per underlying, order and fill counts, fees, stuck orders, risk."""

    def __init__(
        self,
        settings: Callable[[], Settings],
        clock: Clock,
        view: MarketView,
        policies: Policies,
        last_decision: Mapping[str, HedgeDecision],
        executor: Executor,
        cross: CrossHedges,
        router: Router,
        riskview: RiskView,
    ) -> None:
        """`last_decision`: the hedger's latest decision per underlying, read as it changes."""
        self._settings = settings
        self.clock = clock
        self.view = view
        self._policies = policies
        self._last_decision = last_decision
        self.executor = executor
        self.cross = cross
        self.router = router
        self.riskview = riskview

    def band(self, underlying: str) -> dict[str, Any] | None:
        """Where the delta stands against the band: the band of the last decision (or the
        policy's band now, before any decision), inside it within one hedge lot or not."""
        settings = self._settings()
        seen = self.view.snapshot(underlying) if underlying in settings.hedge else None
        if seen is None:
            return None
        exp, mkt = seen
        last = self._last_decision.get(underlying)
        band = (
            last.bounds
            if last is not None
            else self._policies.of(settings, underlying).band_for(exp, mkt, self.clock.now_ms())
        )
        h = settings.hedge[underlying]
        hedge = self.view.catalog[(h.account, h.instrument)]
        lot_coin = hedge.amount_step * hedge.coin_delta_per_contract(exp.price)
        lot = lot_coin if band.unit == "coin" else lot_coin * exp.price
        delta = exp.delta_in(band.unit)
        return {
            "underlying": exp.underlying,
            "delta": delta,
            **band.as_dict(),
            "lot": lot,
            "inside_band": band.contains(delta, slack=lot),
            "in_flight_coin": exp.in_flight_coin,
        }

    def summary(self, open_orders_left: int) -> dict[str, Any]:
        deltas: dict[str, Any] = {}
        for u in self._settings().hedge:
            exp = self.view.exposure(u)
            if exp is not None:
                band = self.band(u) or {}
                band.pop("underlying", None)
                deltas[u] = {"delta_coin": exp.delta_coin, "delta_usd": exp.delta_usd, **band}
                if (cross := self.cross.report(u)) is not None:
                    deltas[u]["cross"] = cross
                routing = self.router.state(u, exp.price, self.clock.now_ms())
                if routing:
                    deltas[u]["routing"] = routing  # where the hedge is held, per candidate
        ledger = self.view.ledger
        orders = ledger.orders.values()
        return {
            "delta": deltas,
            "orders_sent": self.executor.orders_sent,
            "orders_refused": self.executor.orders_refused,
            "orders_filled": ledger.forgotten_filled + sum(1 for o in orders if o.booked > 0),
            "fills": ledger.fills_count,
            "fees": dict(ledger.fees_paid),
            "open_orders_left": open_orders_left,
            # Orders the venue never gave a final state for: check them at the venue.
            "stuck_orders": sorted(self.executor.stuck.orders),
            "risk": self.riskview.brief(),
        }
