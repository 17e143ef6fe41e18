"""What the hedger sees: the book's lines, the latest market data, positions held elsewhere, and
from them the exposure of one underlying.

Synchronous; time comes from the clock passed in. Work per call is proportional to what moved:
per underlying, the columns, the quantities held (from the ledger) and the option IVs (from the
tickers) are numpy arrays aligned with Columns.keys, built once per set of lines and updated in
place on tickers and fills, so an evaluation walks no dict of lines.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

import numpy as np
import numpy.typing as npt

from bot.clock import Clock, wall_ms
from bot.config import Settings
from bot.core.book import (
    NO_STATS,
    Columns,
    Exposure,
    FloatArray,
    LineKey,
    book_stats,
    exposure_of,
)
from bot.core.equity import is_coin_settled
from bot.core.external import External, with_external
from bot.core.instruments import Instrument
from bot.core.market import OrderBook, Ticker, UnderlyingMarket, half_spread
from bot.core.spanbook import SpanGreeks, span_greeks
from bot.execution.ledger import Ledger
from bot.hedger.equity import EquityTracker, with_ivs
from bot.hedger.venue_greeks import VenueGreeks

Emit = Callable[..., None]


@dataclass(slots=True)
class Underlying:
    """One underlying's arrays, aligned with `cols.keys`: quantities the ledger holds (as of
    `ledger_version`) and the latest IV of each option line (nan: none yet)."""

    cols: Columns
    column: dict[LineKey, int]
    held: FloatArray
    iv: FloatArray
    ledger_version: int


class MarketView:
    def __init__(
        self,
        settings: Callable[[], Settings],
        venues: set[str],
        catalog: Mapping[LineKey, Instrument],
        ledger: Ledger,
        clock: Clock,
        emit: Emit,
        on_lines_changed: Callable[[], None],
    ) -> None:
        self._settings = settings
        self.venues = venues
        self.catalog = catalog
        self.ledger = ledger
        self.clock = clock
        self._emit = emit
        self._on_lines_changed = on_lines_changed
        self.lines: dict[LineKey, Instrument] = {}
        self.columns: dict[str, Columns] = {}
        self._state: dict[str, Underlying] = {}
        self._inputs: dict[str, tuple[Columns, FloatArray, FloatArray, float]] = {}
        # the last market made per underlying, with what it was made from (see `market`)
        self._markets: dict[
            str,
            tuple[Ticker, OrderBook | None, Instrument | None, Settings, UnderlyingMarket],
        ] = {}
        # ticker key -> (underlying state, column) whose IV that ticker sets; lines held outside
        # our venues take a venue's ticker of the same symbol
        self._iv_cols: dict[LineKey, list[tuple[Underlying, int]]] = {}
        self._accounts: dict[str, set[str]] = {}
        self.tickers: dict[LineKey, Ticker] = {}
        self.books: dict[LineKey, OrderBook] = {}
        # (source, symbol) -> what that source holds
        self.external: dict[tuple[str, str], External] = {}
        self.greeks = VenueGreeks(lambda: settings().engine, self.ticker_for, emit)
        # coin the accounts hold (balances, coin P&L): counted in the usd view
        self.equity = EquityTracker(
            self.lines, ledger.positions, self.market_with_ivs, clock.now_ms
        )
        # coin delta other underlyings' cross hedges put on an underlying (bot/hedger/cross.py)
        self.cross_coin: Callable[[str], float] = lambda _underlying: 0.0

    # ---- lines -------------------------------------------------------------------------------

    def add_line(self, key: LineKey, ins: Instrument) -> None:
        if key in self.lines:
            return
        self.lines[key] = ins
        self.columns.pop(ins.underlying, None)
        self._accounts.pop(ins.underlying, None)
        self._drop_state(ins.underlying)
        self._on_lines_changed()

    def ensure_line(self, key: LineKey) -> None:
        """A position appeared on a listed instrument (a fill, a reconcile): count it."""
        if key not in self.lines and key in self.catalog:
            self.add_line(key, self.catalog[key])

    def columns_of(self, underlying: str) -> Columns:
        cols = self.columns.get(underlying)
        if cols is None:
            cols = self.columns[underlying] = Columns.of(underlying, self.lines)
        return cols

    def state_of(self, underlying: str) -> Underlying:
        """The underlying's arrays; quantities re-read from the ledger when it moved."""
        st = self._state.get(underlying)
        if st is None:
            cols = self.columns_of(underlying)
            iv = np.full(len(cols.keys), np.nan)
            held = cols.quantities(self.ledger.positions)
            column = {k: i for i, k in enumerate(cols.keys)}
            st = Underlying(cols, column, held, iv, self.ledger.version)
            self._state[underlying] = st
            for i in cols.opt.tolist():
                key = cols.keys[i]
                t = self.ticker_for(key)
                if t is not None and t.iv is not None:
                    iv[i] = t.iv
                for src in self._iv_sources(key):
                    self._iv_cols.setdefault(src, []).append((st, i))
        elif st.ledger_version != self.ledger.version:
            # Fills and reconciliation move positions a few times a day: re-read them then.
            st.held = st.cols.quantities(self.ledger.positions)
            st.ledger_version = self.ledger.version
        return st

    def _iv_sources(self, key: LineKey) -> list[LineKey]:
        if key[0] in self.venues:
            return [key]
        return [k for k in self.catalog if k[1] == key[1] and k[0] in self.venues]

    def _drop_state(self, underlying: str) -> None:
        st = self._state.pop(underlying, None)
        if st is not None:
            for src in [k for k, v in self._iv_cols.items() if any(x is st for x, _ in v)]:
                left = [(x, i) for x, i in self._iv_cols[src] if x is not st]
                if left:
                    self._iv_cols[src] = left
                else:
                    del self._iv_cols[src]

    def set_ticker(self, key: LineKey, ticker: Ticker) -> bool:
        """Store a line's newest ticker; True when it changed an option's IV (the exposure
        moved even though the underlying's price did not)."""
        self.tickers[key] = ticker
        targets = self._iv_cols.get(key)
        if targets is None:
            return False
        iv = np.nan if ticker.iv is None else ticker.iv
        changed = False
        for st, i in targets:
            old = st.iv[i]
            if old != iv and not (iv != iv and old != old):  # nan == nan here
                st.iv[i] = iv
                changed = True
        return changed

    def missing_iv(self, underlying: str) -> bool:
        st = self.state_of(underlying)
        return bool(np.isnan(st.iv[st.cols.opt]).any())

    def accounts_of(self, underlying: str) -> set[str]:
        """Accounts an underlying depends on: where it is hedged, and where its lines are held."""
        accounts = self._accounts.get(underlying)
        if accounts is None:
            accounts = {self._settings().hedge[underlying].account}
            accounts.update(a for (a, _) in self.columns_of(underlying).keys)
            accounts &= self.venues
            self._accounts[underlying] = accounts
        return accounts

    # ---- market ------------------------------------------------------------------------------

    def ticker_for(self, key: LineKey) -> Ticker | None:
        """A line's ticker; lines held outside our venues use a venue's ticker of the symbol."""
        t = self.tickers.get(key)
        if t is not None or key[0] in self.venues:
            return t
        return next((t for (a, s), t in self.tickers.items() if s == key[1]), None)

    def market(self, underlying: str) -> UnderlyingMarket | None:
        settings = self._settings()
        h = settings.hedge[underlying]
        key = (h.account, h.instrument)
        ref = self.tickers.get(key)
        if ref is None:
            return None
        hedge, book = self.catalog.get(key), self.books.get(key)
        # Settings, tickers, books and instruments are frozen and replaced when they change: the
        # same ones make the same market (asked for several times per tick).
        last = self._markets.get(underlying)
        if (
            last is not None
            and last[0] is ref
            and last[1] is book
            and last[2] is hedge
            and last[3] is settings
        ):
            return last[4]
        index = ref.index if ref.index is not None else ref.mid
        if index is None or index <= 0:
            return None
        # The options' IVs stay in the view's arrays (state_of): no dict is built per decision.
        mkt = UnderlyingMarket(
            underlying=underlying,
            ts_ms=ref.ts_ms,
            index=index,
            vol=float("nan"),
            rate=settings.engine.rate,
            hedge_fee=hedge.taker_fee if hedge is not None else 0.0,
            hedge_half_spread=half_spread(book, ref),
        )
        self._markets[underlying] = (ref, book, hedge, settings, mkt)
        return mkt

    # ---- exposure ----------------------------------------------------------------------------

    def exposure(self, underlying: str) -> Exposure | None:
        seen = self.snapshot(underlying)
        return seen[0] if seen is not None else None

    def snapshot(
        self,
        underlying: str,
        stats: bool = False,
        at: tuple[UnderlyingMarket, int] | None = None,
    ) -> tuple[Exposure, UnderlyingMarket] | None:
        """The underlying's exposure and the market it was computed on; with `stats`, also the
        book statistics cost-aware policies need (bot/core/book.py book_stats). `at`: on that
        market at that clock ms instead of the latest (a backtest's fast-forward)."""
        mkt = self.market(underlying) if at is None else at[0]
        if mkt is None:
            return None
        eng = self._settings().engine
        st = self.state_of(underlying)
        cols = st.cols
        held, external = with_external(self.live_external(), underlying, st.column, st.held)
        if eng.hedge_view == "usd" and self.equity.counts(underlying):
            external += self._equity(underlying, st, held, mkt)
        external += self.cross_coin(underlying)
        pending = self._pending(st)
        qty = held + pending
        self._inputs[underlying] = (cols, qty, st.iv, mkt.rate)
        now = self.clock.now_ms() if at is None else at[1]
        # what cost-aware policies size their bands from: a pricing of the option book
        book = (
            book_stats(cols, qty, mkt.index, st.iv, mkt.rate, now, external) if stats else NO_STATS
        )
        exp = exposure_of(
            cols,
            held,
            pending,
            mkt.index,
            st.iv,
            mkt.rate,
            now,
            eng.hedge_view,
            external,
            mkt.ts_ms,
            book,
        )
        if eng.greeks_source == "own" or not cols.opt.size:
            return exp, mkt
        own, venue = self.greeks.deltas(underlying, cols, held, st.iv, mkt, now)
        if eng.greeks_source == "venue":
            # Only the options' delta changes source; delta-one lines are exact either way.
            shift = venue - own
            exp = replace(
                exp,
                delta_coin=exp.delta_coin + shift,
                delta_usd=(exp.delta_coin + shift) * exp.price,
            )
        return exp, mkt

    def spans(self, underlying: str) -> bool:
        """Can held_span value this underlying's book?"""
        eng = self._settings().engine
        if self.external or eng.greeks_source != "own":
            return False
        return eng.hedge_view != "usd" or not self.equity.waiting(underlying)

    def held_span(
        self, underlying: str, s: FloatArray, now_ms: npt.NDArray[np.int64]
    ) -> SpanGreeks | None:
        """`snapshot`'s greeks at each (s[i], now_ms[i]) with nothing else moving: a backtest's
        quiet span, no order in flight. None where the span would need what only a tick at a
        time gives (external positions, venue greeks, a balance read still to apply)."""
        mkt = self.market(underlying)
        if mkt is None or not self.spans(underlying):
            return None
        eng = self._settings().engine
        st = self.state_of(underlying)
        g = span_greeks(st.cols, st.held, st.iv, s, now_ms, mkt.rate, eng.hedge_view)
        if eng.hedge_view == "usd" and self.equity.counts(underlying):
            extra = self.equity.delta_coin_span(underlying, st.cols, st.held, st.iv, mkt, s, now_ms)
            if extra is None:
                return None
            g = replace(g, delta_coin=g.delta_coin + extra)
        return g

    def _equity(
        self, underlying: str, st: Underlying, held: FloatArray, mkt: UnderlyingMarket
    ) -> float:
        """Coin the accounts hold, for the usd view (bot/hedger/equity.py)."""
        return self.equity.delta_coin(underlying, st.cols, held, st.iv, mkt)

    def market_with_ivs(self, underlying: str) -> UnderlyingMarket | None:
        """The market with each option line's IV as a mapping (the decision path keeps them in
        arrays; code that works on mappings asks here)."""
        mkt = self.market(underlying)
        if mkt is None:
            return None
        st = self.state_of(underlying)
        return with_ivs(st.cols, st.iv, mkt)

    def equity_moves(self, underlying: str) -> bool:
        """Does the coin the accounts hold change with the price (coin-settled lines held in
        an account whose balances count, in the usd view)? The corridor then bounds that too."""
        if self._settings().engine.hedge_view != "usd":
            return False
        accounts = self.equity.accounts.get(underlying)
        if not accounts:
            return False
        return any(
            is_coin_settled(ins) and self.ledger.positions.get(key, 0.0) != 0.0
            for key, ins in self.lines.items()
            if key[0] in accounts and ins.underlying == underlying
        )

    def _pending(self, st: Underlying) -> FloatArray:
        """In-flight contracts per column: orders are few, so walk them, not the lines."""
        pending = np.zeros(len(st.cols.keys))
        for key, qty in self.ledger.in_flight().items():
            i = st.column.get(key)
            if i is not None:
                pending[i] += qty
        return pending

    def inputs_of(self, underlying: str) -> tuple[Columns, FloatArray, FloatArray, float]:
        """What the last snapshot of `underlying` was computed from: columns, quantities held
        and in flight, IVs (live: a later IV change moves them) and the rate."""
        return self._inputs[underlying]

    def live_external(self) -> dict[tuple[str, str], External]:
        now = wall_ms()
        for k in [k for k, v in self.external.items() if v.expires_at_ms <= now]:
            u = self.external.pop(k).underlying
            self._emit("state", "external.expired", source=k[0], symbol=k[1], underlying=u)
        return self.external

    def external_until(self, underlying: str) -> int:
        """Clock ms by which an external position of `underlying` may have expired (its wall
        expiry, as time from now; a clock at least as fast as the wall reaches it no later)."""
        ends = [e.expires_at_ms for e in self.external.values() if e.underlying == underlying]
        if not ends:
            return 2**62
        return self.clock.now_ms() + max(min(ends) - wall_ms(), 0)

    def held(self, key: LineKey) -> bool:
        return abs(self.ledger.positions.get(key, 0.0)) > 1e-12 or any(
            (f"external:{src}", sym) == key for (src, sym) in self.external
        )
