"""Malformed venue data (tickers, books, fills) is refused with an alert, never used: the last
good market data stays, and a refused fill leaves the position to REST reconciliation."""

from __future__ import annotations

from collections.abc import Callable

from bot.core.orders import Fill

Emit = Callable[..., None]


class BadData:
    def __init__(self, emit: Emit, request_reconcile: Callable[[], None]) -> None:
        self._emit = emit
        self._request_reconcile = request_reconcile
        self._bad: set[tuple[str, str]] = set()  # (account, "what:symbol") alerted, not yet sane

    def rejected(self, account: str, symbol: str, what: str, problem: str | None) -> bool:
        """Malformed market data is dropped with an alert (once until that feed is sane again):
        the last good data stays, and staleness halts trading if no good data follows."""
        key = (account, f"{what}:{symbol}")
        if problem is None:
            self._bad.discard(key)
            return False
        if key not in self._bad:
            self._bad.add(key)
            self._emit(
                "alert",
                "market.bad_data",
                account=account,
                symbol=symbol,
                data=what,
                problem=problem,
            )
        return True

    def fill_rejected(self, account: str, fill: Fill) -> bool:
        """A malformed fill is never booked: REST reconciliation gives the true position."""
        problem = fill.problem()
        if problem is None:
            return False
        self._emit(
            "alert",
            "fill.bad_data",
            account=account,
            symbol=fill.symbol,
            client_id=fill.client_id,
            trade_id=fill.trade_id,
            problem=problem,
        )
        self._request_reconcile()
        return True
