"""Fair values and order books of the simulated exchange, computed on demand.

A tick only moves the prices and bumps a version. A fair value or a book is computed the first
time someone asks for it at that version (a watcher, a ticker, an order, a resting order the
tick may fill) and kept until the next one, so instruments nobody watches or trades cost nothing.
The first option asked for at a version prices every option in one vectorized call, and the
first option ticker tops all their books in another.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace

import numpy as np

from bot.core.greeks import FloatArray
from bot.core.instruments import Instrument, Kind
from bot.core.market import OrderBook, Ticker
from bot.venues.sim import book as bk
from bot.venues.sim.pricing import Fair, OptionColumns, option_fairs, option_marks


class Quotes:
    def __init__(
        self,
        instruments: Mapping[str, Instrument],
        names: Sequence[str],
        vols: Mapping[str, float],
        params: bk.BookParams,
        option_params: bk.BookParams,
    ) -> None:
        self.instruments = instruments
        self.names = list(names)
        self.vols = dict(vols)
        self.params = params
        self.option_params = option_params
        options = [i for i in instruments.values() if i.kind is Kind.OPTION]
        self.options = OptionColumns.of(options, self.names, self.vols)
        self._option_ticks = bk.ticks_of(options)
        self.option_at = {o.symbol: n for n, o in enumerate(options)}  # symbol -> its column
        self._slot = {u: n for n, u in enumerate(self.names)}
        self.version = 0
        self.ts_ms = 0
        self.prices: list[float] = []
        self._fairs: dict[str, Fair] = {}
        self._books: dict[str, OrderBook] = {}
        # every option's mark and delta per contract, then its best bid and ask, at this version
        self._marks: tuple[list[float], list[float]] | None = None
        self._tops: tuple[list[float | None], list[float]] | None = None
        self._ladders: dict[str, bk.Ladder] = {}
        self.books_built = 0  # counters, for tests and benchmarks
        self.option_pricings = 0

    def move(self, prices: Sequence[float], ts_ms: int) -> None:
        """New prices (in `names` order) at `ts_ms`: everything computed so far is stale."""
        self.version += 1
        self.prices = list(prices)
        self.ts_ms = ts_ms
        self._fairs.clear()
        self._books.clear()
        self._marks = None
        self._tops = None

    def set_vols(self, vols: Mapping[str, float]) -> None:
        """The options' IV by underlying (a model with moving vol): the next `move` prices them."""
        if all(self.vols[u] == vols[u] for u in self.names):
            return
        self.vols = {u: vols[u] for u in self.names}
        sigma = np.array([vols[u] for u in self.names], dtype=np.float64)[self.options.underlying]
        self.options = replace(self.options, sigma=sigma, half_var=0.5 * sigma * sigma)
        self._fairs.clear()
        self._marks = None
        self._tops = None

    def index(self, underlying: str) -> float:
        return self.prices[self._slot[underlying]]

    def fair(self, symbol: str) -> Fair:
        fair = self._fairs.get(symbol)
        if fair is not None:
            return fair
        inst = self.instruments[symbol]
        if inst.kind is Kind.OPTION:
            marks, deltas = self._option_marks()
            n = self.option_at[symbol]
            fair = Fair(mark=marks[n], iv=self.vols[inst.underlying], delta=deltas[n])
        else:
            fair = Fair(mark=self.index(inst.underlying))
        self._fairs[symbol] = fair
        return fair

    def _option_marks(self) -> tuple[list[float], list[float]]:
        if self._marks is None:
            price, delta = option_marks(self.options, self.prices, self.ts_ms)
            mark, delta = option_fairs(self.options, self.prices, price, delta)
            self._marks = mark.tolist(), delta.tolist()
            self.option_pricings += 1
        return self._marks

    def _option_tops(self) -> tuple[list[float | None], list[float]]:
        if self._tops is None:
            self._tops = self.option_tops(np.array(self._option_marks()[0], dtype=np.float64))
        return self._tops

    def option_tops(self, marks: FloatArray) -> tuple[list[float | None], list[float]]:
        """Best bid (None: none above 0) and ask of every option (`options` order) at `marks`."""
        return bk.tops_of_book(self._option_ticks, marks, self.option_params)

    def _params(self, inst: Instrument) -> bk.BookParams:
        return self.option_params if inst.kind is Kind.OPTION else self.params

    def book(self, symbol: str) -> OrderBook:
        """The book at this version: built on the first ask, or as a taker order left it."""
        book = self._books.get(symbol)
        if book is None:
            lad = self._ladders.get(symbol)
            if lad is None:
                inst = self.instruments[symbol]
                lad = self._ladders[symbol] = bk.ladder(inst, self._params(inst))
            index = self.index(lad.inst.underlying)
            bid_p, bid_q, ask_p, ask_q = bk.book_levels(lad, self.fair(symbol).mark, index)
            book = OrderBook(symbol, self.ts_ms, bk.levels(bid_p, bid_q), bk.levels(ask_p, ask_q))
            self._books[symbol] = book
            self.books_built += 1
        return book

    def set_book(self, symbol: str, book: OrderBook) -> None:
        """Liquidity a taker took stays taken until the next tick."""
        self._books[symbol] = book

    def ticker(self, symbol: str) -> Ticker:
        return self.tickers([symbol])[0]

    def tickers(self, symbols: Sequence[str]) -> list[Ticker]:
        """Top of book and marks of each; the top without building a book nobody asked for."""
        out = []
        bid: float | None
        ask: float | None
        iv: float | None
        delta: float | None
        for symbol in symbols:
            inst = self.instruments[symbol]
            option = inst.kind is Kind.OPTION
            if option:
                n = self.option_at[symbol]
                marks, deltas = self._option_marks()
                mark, iv, delta = marks[n], self.vols[inst.underlying], deltas[n]
            else:
                mark, iv, delta = self.fair(symbol).mark, None, None
            book = self._books.get(symbol)
            if book is not None:
                bid, ask = book.best_bid, book.best_ask
            elif option:
                bids, asks = self._option_tops()
                bid, ask = bids[n], asks[n]
            else:
                bid, ask = bk.top_of_book(inst, mark, self.params)
            index = self.index(inst.underlying)
            out.append(Ticker(symbol, self.ts_ms, bid, ask, mark, mark, index, iv, delta))
        return out


class BookView(Mapping[str, OrderBook]):
    """`exchange.books[symbol]`: the live books, each built when looked up."""

    def __init__(self, quotes: Quotes, live: Callable[[str], bool]) -> None:
        self._quotes = quotes
        self._live = live

    def __getitem__(self, symbol: str) -> OrderBook:
        if not self._live(symbol):
            raise KeyError(symbol)
        return self._quotes.book(symbol)

    def __contains__(self, symbol: object) -> bool:
        return isinstance(symbol, str) and self._live(symbol)

    def __iter__(self) -> Iterator[str]:
        return (s for s in self._quotes.instruments if self._live(s))

    def __len__(self) -> int:
        return sum(1 for _ in self)
