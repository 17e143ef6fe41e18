"""The hedger's side of routing: an underlying's candidate lines as the hedger sees them now
(book, position held plus in flight, limit, funding), handed to the pure cost model
(bot/core/routing.py); and the routing block of the state document.

Funding rates arrive from bot/shell/funding.py (`set_funding`); a rate older than
`routing.funding_max_age_s`, or none yet, counts as zero and shows as "stale".
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from bot.config import Settings
from bot.core.book import LineKey
from bot.core.instruments import Instrument, Kind
from bot.core.market import FundingRate, OrderBook, Ticker
from bot.core.routing import Candidate, Route, basis, route
from bot.execution.ledger import Ledger
from bot.routing_config import CandidateConfig


class Router:
    def __init__(
        self,
        settings: Callable[[], Settings],
        catalog: Mapping[LineKey, Instrument],
        ledger: Ledger,
        books: Mapping[LineKey, OrderBook],
        tickers: Mapping[LineKey, Ticker],
    ) -> None:
        self._settings = settings
        self.catalog = catalog
        self.ledger = ledger
        self.books = books
        self.tickers = tickers
        self.funding: dict[LineKey, FundingRate] = {}

    def set_funding(self, key: LineKey, rate: FundingRate) -> None:
        self.funding[key] = rate

    def perp_lines(self) -> list[LineKey]:
        """Candidate perps whose funding rate routing reads."""
        out: list[LineKey] = []
        for h in self._settings().hedge.values():
            for c in h.candidates:
                key = (c.account, c.instrument)
                ins = self.catalog.get(key)
                if ins is not None and ins.kind is Kind.PERP and key not in out:
                    out.append(key)
        return out

    def _fresh(self, key: LineKey, now_ms: int) -> bool:
        rate = self.funding.get(key)
        max_age_ms = self._settings().routing.funding_max_age_s * 1000
        return rate is not None and now_ms - rate.ts_ms <= max_age_ms

    def position_coin(self, key: LineKey, price: float, flying: Mapping[LineKey, float]) -> float:
        """Held plus in flight (`flying`: the ledger's in_flight()), in coin."""
        qty = self.ledger.positions.get(key, 0.0) + flying.get(key, 0.0)
        return qty * self.catalog[key].coin_delta_per_contract(price)

    def candidates(self, underlying: str, price: float, now_ms: int) -> list[Candidate]:
        h = self._settings().hedge[underlying]
        flying = self.ledger.in_flight()  # one walk of the orders for all candidates
        return [self._candidate(c, underlying, price, now_ms, flying) for c in h.candidates]

    def _quote_fresh(self, key: LineKey, now_ms: int) -> bool:
        """A ticker within `engine.stale_after_s` and a book within `execution.book_max_age_s`
        (the executor refuses older books): no leg is planned on data it could not send on."""
        s = self._settings()
        ticker, book = self.tickers.get(key), self.books.get(key)
        return (
            ticker is not None
            and book is not None
            and now_ms - ticker.ts_ms <= s.engine.stale_after_s * 1000
            and now_ms - book.ts_ms <= s.execution.book_max_age_s * 1000
        )

    def _blocked(self, key: LineKey, underlying: str) -> str | None:
        """A candidate the executor would refuse or could not work, by the config alone:
        a taker fee above `execution.max_fee_bps` (the executor's fee cap), or TWAP on a
        contract other than the reference's (TWAP re-checks the remaining gap in the
        reference's contracts, the executor's gap_of)."""
        s = self._settings()
        h = s.hedge[underlying]
        ref = self.catalog.get((h.account, h.instrument))
        ins = self.catalog[key]
        cfg = s.execution.for_symbol(key[1])
        if ins.taker_fee * 10_000.0 > cfg.max_fee_bps:
            return "fee_cap"
        if cfg.mode != "twap" or ref is None:
            return None
        same = (ins.settlement, ins.contract_size) == (ref.settlement, ref.contract_size)
        return None if same else "twap_needs_reference_contract"

    def _candidate(
        self,
        c: CandidateConfig,
        underlying: str,
        price: float,
        now_ms: int,
        flying: Mapping[LineKey, float],
    ) -> Candidate:
        key = (c.account, c.instrument)
        return Candidate(
            key=key,
            instrument=self.catalog[key],
            book=self.books.get(key),
            position_coin=self.position_coin(key, price, flying),
            limit_coin=c.limit_coin(price),
            funding=self.funding.get(key),
            funding_fresh=self._fresh(key, now_ms),
            quote_fresh=self._quote_fresh(key, now_ms),
            blocked=self._blocked(key, underlying),
        )

    def route(self, underlying: str, gap_coin: float, price: float, now_ms: int) -> Route | None:
        """Where an order of `gap_coin` goes; None when the underlying lists no candidates."""
        h = self._settings().hedge[underlying]
        if not h.candidates:
            return None
        horizon = self._settings().routing.holding_horizon_h
        return route(gap_coin, price, self.candidates(underlying, price, now_ms), horizon, now_ms)

    def state(self, underlying: str, price: float | None, now_ms: int) -> list[dict[str, Any]]:
        """Each candidate's position, limit, funding and basis, for the state document."""
        h = self._settings().hedge.get(underlying)
        if h is None or not h.candidates or price is None or price <= 0:
            return []
        out = []
        flying = self.ledger.in_flight()
        for c in h.candidates:
            key = (c.account, c.instrument)
            ins = self.catalog.get(key)
            if ins is None:
                continue
            rate = self.funding.get(key)
            book = self.books.get(key)
            b = basis(ins, book.mid if book else None, price, now_ms)
            out.append(
                {
                    "account": c.account,
                    "symbol": c.instrument,
                    "position": self.ledger.positions.get(key, 0.0),
                    "position_coin": self.position_coin(key, price, flying),
                    "limit_coin": c.limit_coin(price),
                    "funding_rate": rate.rate if rate is not None else None,
                    "funding_interval_h": rate.interval_h if rate is not None else None,
                    "funding": (
                        ("fresh" if self._fresh(key, now_ms) else "stale")
                        if ins.kind is Kind.PERP
                        else "n/a"
                    ),
                    "basis_bps": b[0] if ins.kind is Kind.FUTURE else None,
                    "basis_annual": b[1] if ins.kind is Kind.FUTURE else None,
                }
            )
        return out
