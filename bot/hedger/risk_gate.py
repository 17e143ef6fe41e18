"""The pre-trade risk gate: it owns the risk state (trading state, circuit breaker, order rate)
and the limits; every order passes `check` before the executor sees it, and the venue's answers
feed the breaker. Synchronous, time from the clock it is given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from bot.clock import Clock
from bot.config_execution import RiskConfig
from bot.core import risk
from bot.core.instruments import Instrument
from bot.core.market import Ticker
from bot.core.orders import OrderIntent, Side
from bot.core.risk import OrderCheck
from bot.execution.ledger import Ledger, TrackedOrder

Emit = Callable[..., None]


class RiskGate:
    def __init__(
        self,
        cfg: RiskConfig,
        ledger: Ledger,
        clock: Clock,
        emit: Emit,
        on_trading_change: Callable[[], None],
    ) -> None:
        """`on_trading_change`: the trading state moved (a halt or its end changes every
        decision)."""
        self.limits = risk.RiskLimits.from_config(cfg)
        self._state = risk.initial_state(cfg.initial_state)
        self._ledger = ledger
        self._clock = clock
        self._emit = emit
        self._on_trading_change = on_trading_change

    @property
    def state(self) -> risk.RiskState:
        return self._state

    @state.setter
    def state(self, state: risk.RiskState) -> None:
        changed = state.trading_state is not self._state.trading_state
        self._state = state
        if changed:
            self._on_trading_change()

    def apply(self, cfg: RiskConfig) -> None:
        self.limits = risk.RiskLimits.from_config(cfg)

    def check(
        self,
        account: str,
        intent: OrderIntent,
        price: float | None,
        ticker: Ticker,
        ins: Instrument,
    ) -> OrderCheck | None:
        """The order's check when every rule passes; None, with a `risk.rejected` event naming
        the rule and its numbers, when one does not. What is in flight on the line counts."""
        key = (account, intent.symbol)
        buy = sell = 0.0
        for o in self._ledger.unsettled():
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
            position_before=self._ledger.positions.get(key, 0.0),
            in_flight_buy=buy,
            in_flight_sell=sell,
        )
        verdict = risk.check_order(check, self.limits, self._state, self._clock.now_ms())
        if verdict.approved:
            return check
        # Merged, not passed side by side: a rule's numbers may name the amount too.
        self._emit("reject", "risk.rejected", **(intent.fields() | verdict.as_dict()))
        return None

    def sent(self, notional_usd: float) -> None:
        """An order the gate passed went to the executor (the order-rate window counts it)."""
        self.state = risk.record_sent(self._state, self._clock.now_ms(), notional_usd)

    def on_outcome(self, order: TrackedOrder, accepted: bool) -> None:
        """Feeds the circuit breaker: venue rejects and send errors count, acceptances reset."""
        was_open = self._state.breaker_open
        if accepted:
            self.state = risk.record_success(self._state)
        else:
            self.state = risk.record_failure(self._state, self.limits, self._clock.now_ms())
        if self._state.breaker_open and not was_open:
            data: dict[str, Any] = {
                "failures": self._state.consecutive_failures,
                "until_ms": self._state.breaker_open_until_ms,
            }
            self._emit("alert", "risk.breaker_open", **data)
