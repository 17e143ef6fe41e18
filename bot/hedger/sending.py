"""Sending a decision: where its trade goes (one hedge line, or the legs a route picks), the
order each leg needs, then the risk gate and the executor. Every leg that sends nothing is an
event with the reason; every rejection by the gate is one too (bot/hedger/risk_gate.py)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

from bot.clock import Clock
from bot.core.book import LineKey
from bot.core.instruments import Instrument
from bot.core.market import Ticker
from bot.core.orders import OrderIntent
from bot.core.planner import plan
from bot.core.policy import HedgeDecision
from bot.core.routing import Route
from bot.execution.executor import Executor
from bot.execution.ledger import Ledger
from bot.hedger.gate import CorridorGate
from bot.hedger.risk_gate import RiskGate
from bot.hedger.routing import Router
from bot.hedger.view import MarketView


class Sender:
    def __init__(
        self,
        catalog: Mapping[LineKey, Instrument],
        ledger: Ledger,
        executor: Executor,
        risk: RiskGate,
        gate: CorridorGate,
        view: MarketView,
        router: Router,
        clock: Clock,
        hedge_line: Callable[[str], LineKey],
        emit: Callable[..., None],
        retry_after_s: Callable[[], float],
    ) -> None:
        """`retry_after_s`: engine.retry_after_refusal_s, read when a trade sends nothing."""
        self.catalog = catalog
        self.ledger = ledger
        self.executor = executor
        self.risk = risk
        self.gate = gate
        self.view = view
        self.router = router
        self.clock = clock
        self.hedge_line = hedge_line
        self.emit = emit
        self._retry_after_s = retry_after_s
        self._retry_at: dict[str, int] = {}  # underlying -> clock ms a refused trade may retry

    def route(self, decision: HedgeDecision) -> Route | None:
        """Where a trade goes when the underlying lists candidates (bot/hedger/routing.py)."""
        if not decision.trade:
            return None
        return self.router.route(
            decision.underlying, decision.gap_coin, decision.price, self.clock.now_ms()
        )

    def send(self, decision: HedgeDecision, routed: Route | None) -> None:
        """One intent on the hedge instrument, or one per leg of the route."""
        if routed is None:
            legs = [(self.hedge_line(decision.underlying), decision.gap_coin)]
        else:
            legs = [(g.key, g.coin) for g in routed.legs]
            if not legs:
                self._skipped(
                    underlying=decision.underlying,
                    reason="no_candidate",  # every candidate at its limit or without a book
                    contracts=0.0,
                )
        for key, coin in legs:
            hedge = self.catalog[key]
            position = self.ledger.positions.get(key, 0.0)
            leg = replace(decision, gap_coin=coin)
            result = plan(leg, hedge, decision.price, self.executor.new_client_id(), position)
            if result.intent is None:
                self._skipped(
                    underlying=decision.underlying,
                    symbol=key[1],
                    account=key[0],
                    reason=result.reason,
                    contracts=result.contracts,
                )
                continue
            self.submit(key[0], result.intent, self.view.tickers[key], hedge)
        u = decision.underlying
        if self.ledger.has_unsettled(u):
            self._retry_at.pop(u, None)
        else:
            self._retry_at[u] = self.clock.now_ms() + int(self._retry_after_s() * 1000)

    def refused_lately(self, underlying: str) -> bool:
        """Did a trade for `underlying` send nothing within engine.retry_after_refusal_s? The
        same data would be refused again: a decision and a rejection event on every tick."""
        until = self._retry_at.get(underlying)
        return until is not None and self.clock.now_ms() < until

    def retry_now(self) -> None:
        """Something a refusal depends on changed (the config, the trading state)."""
        self._retry_at.clear()

    def submit(self, account: str, intent: OrderIntent, ticker: Ticker, ins: Instrument) -> None:
        """Risk gate, then executor. Every rejection is an event with the rule and numbers."""
        self.gate.clear(intent.underlying)
        price = self.executor.limit_price(account, intent, ticker)
        check = self.risk.check(account, intent, price, ticker, ins)
        if check is None:
            return
        key = (account, intent.symbol)
        if self.executor.submit(account, intent, ticker, self.view.books.get(key)) is not None:
            self.risk.sent(check.notional_usd)

    def _skipped(self, **data: Any) -> None:
        self.emit("decision", "hedge.skipped", **data)
