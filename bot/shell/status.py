"""The P&L part of the periodic `daemon.status`: fees, slippage and hedged P&L since start.

An event sink (fills and orders from the bus) plus a valuation on demand from what the shell
already holds: REST balances (bot/shell/reconcile.py), the hedger's positions and tickers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bot.core.book import LineKey
from bot.core.instruments import Instrument, Kind
from bot.core.pnl import Basis, Costs, value_usd
from bot.events import Event
from bot.hedger.hedger import Hedger


class PnlStatus:
    def __init__(
        self, hedger: Hedger, accounts: set[str], balances: Mapping[str, Mapping[str, float]]
    ) -> None:
        self.hedger = hedger
        self.accounts = accounts
        self.balances = balances  # account -> last REST balances, kept fresh by the reconciler
        self.costs = Costs(hedger.catalog)
        self.basis = Basis()
        self.start_value_usd: float | None = None

    def _index(self, underlying: str) -> float:
        m = self.hedger.view.market(underlying)
        return m.index if m is not None else 0.0

    def emit(self, event: Event) -> None:
        d = event.data
        self.costs.on_event(event.name, d, self._index)
        if event.name == "order.fill":
            key = (d["account"], d["symbol"])
            ins = self.hedger.catalog.get(key)
            if ins is not None and ins.kind in (Kind.PERP, Kind.FUTURE):
                signed = d["amount"] if d["side"] == "buy" else -d["amount"]
                self.basis.on_fill(key, ins, signed, d["price"])

    def ensure_start(self) -> None:
        """Take the start value as soon as there is one (the heartbeat calls this)."""
        if self.start_value_usd is None:
            self.start_value_usd = self._value()

    def report(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "fees_usd": self.costs.fees_usd,
            "slippage_usd": self.costs.slippage_usd,
        }
        value = self._value()
        if value is not None and self.start_value_usd is None:
            self.start_value_usd = value
        out["value_usd"] = value
        out["start_value_usd"] = self.start_value_usd
        out["pnl_usd"] = (
            value - self.start_value_usd
            if value is not None and self.start_value_usd is not None
            else None
        )
        return out

    def _value(self) -> float | None:
        """None until every underlying held has an index and every account its balances."""
        h = self.hedger
        if self.accounts - set(self.balances):
            return None
        index: dict[str, float] = {}
        options: dict[LineKey, float] = {}
        marks: dict[LineKey, float] = {}
        for key, qty in h.ledger.positions.items():
            ins: Instrument | None = h.catalog.get(key)
            if ins is None or qty == 0.0 or ins.kind is Kind.SPOT:
                continue
            s = index.get(ins.underlying) or self._index(ins.underlying)
            if s <= 0:
                return None
            index[ins.underlying] = s
            if ins.kind is Kind.OPTION:
                t = h.view.ticker_for(key)
                if t is None or t.mid is None:
                    return None
                options[key], marks[key] = qty, t.mid
            else:
                self.basis.start(key, ins, qty, s)
        for u in h.settings.hedge:
            index.setdefault(u, self._index(u))
        self.basis.started = True
        return value_usd(self.balances, options, self.basis, h.catalog, index, marks)
