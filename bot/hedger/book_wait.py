"""Waiting for the hedge instrument's book of the same tick before deciding, so an order is never
priced off an earlier book than the decision saw. Streams deliver a tick and its book in either
order; waiting makes the outcome the same."""

from __future__ import annotations

from collections.abc import Callable, Mapping

from bot.clock import Clock
from bot.core.book import LineKey
from bot.core.instruments import Instrument
from bot.core.market import OrderBook
from bot.hedger.view import MarketView

# Longest a decision waits for the hedge instrument's book of the same tick (clock ms).
BOOK_WAIT_MS = 1_000


class BookWait:
    def __init__(
        self,
        catalog: Mapping[LineKey, Instrument],
        view: MarketView,
        clock: Clock,
        hedge_line: Callable[[str], LineKey],
        mark_dirty: Callable[[str], None],
    ) -> None:
        self._catalog = catalog
        self._view = view
        self._clock = clock
        self._hedge_line = hedge_line
        self._mark_dirty = mark_dirty
        self._waits: dict[str, int] = {}  # underlying -> tick a decision waited on

    def behind(self, underlying: str) -> bool:
        """The hedge instrument's book is older than the tick that asks for a decision: wait
        for the book of the same moment (its arrival marks the underlying dirty), at most
        BOOK_WAIT_MS."""
        key = self._hedge_line(underlying)
        ticker, book = self._view.tickers.get(key), self._view.books.get(key)
        if ticker is None or book is None or book.ts_ms >= ticker.ts_ms:
            return False
        if self._waits.get(underlying) == ticker.ts_ms:
            return False  # waited once for this tick: decide with what there is
        self._waits[underlying] = ticker.ts_ms
        self._clock.call_later(BOOK_WAIT_MS / 1000.0, lambda: self._mark_dirty(underlying))
        return True

    def on_book(self, key: LineKey, book: OrderBook) -> None:
        """A stored book: if it is the one a deferred decision waited for, decide now."""
        ticker = self._view.tickers.get(key)
        ins = self._catalog.get(key)
        if (
            ins is not None
            and ticker is not None
            and book.ts_ms == ticker.ts_ms
            and self._waits.get(ins.underlying) == ticker.ts_ms
        ):
            self._mark_dirty(ins.underlying)
