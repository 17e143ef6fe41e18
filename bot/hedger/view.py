"""What the hedger sees: the book's lines, the latest market data, positions held elsewhere, and
from them the exposure of one underlying.

Synchronous; time comes from the clock passed in. Work per call is proportional to the lines of
the underlying asked about: columns and the accounts an underlying depends on are built once per
set of lines and kept until a line is added.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace

from bot.clock import Clock, wall_ms
from bot.config import Settings
from bot.core.book import Columns, Exposure, LineKey, exposure, line_greeks
from bot.core.instruments import Instrument
from bot.core.market import OrderBook, Ticker, UnderlyingMarket
from bot.execution.ledger import Ledger
from bot.hedger.equity import EquityTracker

Emit = Callable[..., None]


@dataclass(frozen=True, slots=True)
class External:
    """A position held outside the bot's venues (OTC, another venue), reported by an operator
    or another system; counted until `expires_at_ms` (wall time: it expires in the real world)."""

    underlying: str
    qty: float
    delta_coin: float | None  # None: a listed instrument, valued like our own lines
    expires_at_ms: int


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
        self._accounts: dict[str, set[str]] = {}
        self.tickers: dict[LineKey, Ticker] = {}
        self.books: dict[LineKey, OrderBook] = {}
        # (source, symbol) -> what that source holds
        self.external: dict[tuple[str, str], External] = {}
        self._greeks_diverged: dict[str, bool] = {}
        self._last_option_deltas: dict[str, tuple[float, float]] = {}  # own, venue (coin)
        # coin the accounts hold (balances, coin P&L): counted in the usd view
        self.equity = EquityTracker(self.lines, ledger.positions, self.market, clock.now_ms)

    # ---- lines -------------------------------------------------------------------------------

    def add_line(self, key: LineKey, ins: Instrument) -> None:
        if key in self.lines:
            return
        self.lines[key] = ins
        self.columns.pop(ins.underlying, None)
        self._accounts.pop(ins.underlying, None)
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
        ref = self.tickers.get((h.account, h.instrument))
        if ref is None:
            return None
        index = ref.index if ref.index is not None else ref.mid
        if index is None or index <= 0:
            return None
        cols = self.columns_of(underlying)
        ivs = {}
        for k, is_option in zip(cols.keys, cols.is_option, strict=True):
            if is_option:
                t = self.ticker_for(k)
                if t is not None and t.iv is not None:
                    ivs[k] = t.iv
        return UnderlyingMarket(
            underlying=underlying,
            ts_ms=ref.ts_ms,
            index=index,
            vol=float("nan"),
            rate=settings.engine.rate,
            option_iv=ivs,
        )

    # ---- exposure ----------------------------------------------------------------------------

    def exposure(self, underlying: str) -> Exposure | None:
        seen = self.snapshot(underlying)
        return seen[0] if seen is not None else None

    def snapshot(self, underlying: str) -> tuple[Exposure, UnderlyingMarket] | None:
        """The underlying's exposure and the market it was computed on."""
        mkt = self.market(underlying)
        if mkt is None:
            return None
        eng = self._settings().engine
        cols = self.columns_of(underlying)
        positions = dict(self.ledger.positions)
        external = 0.0
        for (source, symbol), ext in self.live_external().items():
            if ext.underlying != underlying:
                continue
            if ext.delta_coin is not None:
                external += ext.delta_coin
            else:
                # a listed instrument held elsewhere: valued like ours, on its own line
                key = (f"external:{source}", symbol)
                positions[key] = positions.get(key, 0.0) + ext.qty
        if eng.hedge_view == "usd":
            external += self.equity.delta_coin(underlying, cols, positions, mkt)
        now = self.clock.now_ms()
        exp = exposure(cols, positions, self.ledger.in_flight(), mkt, now, eng.hedge_view, external)
        if eng.greeks_source == "own" or not cols.is_option.any():
            return exp, mkt
        own, venue = self._option_deltas(cols, positions, mkt, now)
        self._last_option_deltas[underlying] = (own, venue)
        if eng.greeks_source == "venue":
            # Only the options' delta changes source; delta-one lines are exact either way.
            shift = venue - own
            exp = replace(
                exp,
                delta_coin=exp.delta_coin + shift,
                delta_usd=(exp.delta_coin + shift) * exp.price,
            )
        return exp, mkt

    def live_external(self) -> dict[tuple[str, str], External]:
        now = wall_ms()
        for k in [k for k, v in self.external.items() if v.expires_at_ms <= now]:
            u = self.external.pop(k).underlying
            self._emit("state", "external.expired", source=k[0], symbol=k[1], underlying=u)
        return self.external

    def held(self, key: LineKey) -> bool:
        return abs(self.ledger.positions.get(key, 0.0)) > 1e-12 or any(
            (f"external:{src}", sym) == key for (src, sym) in self.external
        )

    # ---- venue greeks ------------------------------------------------------------------------

    def _option_deltas(
        self, cols: Columns, positions: Mapping[LineKey, float], mkt: UnderlyingMarket, now: int
    ) -> tuple[float, float]:
        """(own, venue) option delta in coin over the underlying's option lines. A line whose
        ticker has no venue delta counts its own delta on both sides (halt_reason refuses to
        trade on `venue` greeks with one missing)."""
        g = line_greeks(cols, mkt, now, self._settings().engine.hedge_view)
        own = venue = 0.0
        for i, key in enumerate(cols.keys):
            qty = positions.get(key, 0.0)
            if not cols.is_option[i] or qty == 0.0:
                continue
            mine = qty * float(g.delta[i])
            t = self.ticker_for(key)
            own += mine
            venue += qty * t.venue_delta if t is not None and t.venue_delta is not None else mine
        return own, venue

    def check_greeks(self, underlying: str) -> None:
        """greeks_source = both: trade on our own greeks, alert when the venue's differ by more
        than greeks_divergence_tol relative to the larger of the two totals and more than
        greeks_divergence_min_coin (so a near-empty book does not alert on noise). Relative,
        because the acceptable model difference grows with the position; one alert per
        crossing, and a state event when they agree again."""
        deltas = self._last_option_deltas.get(underlying)
        if deltas is None:
            return
        own, venue = deltas
        eng = self._settings().engine
        gap = abs(own - venue)
        diverged = gap > eng.greeks_divergence_tol * max(abs(own), abs(venue)) and (
            gap > eng.greeks_divergence_min_coin
        )
        if diverged == self._greeks_diverged.get(underlying, False):
            return
        self._greeks_diverged[underlying] = diverged
        self._emit(
            "alert" if diverged else "state",
            "greeks.diverged" if diverged else "greeks.agree",
            underlying=underlying,
            own_delta_coin=own,
            venue_delta_coin=venue,
            tol=eng.greeks_divergence_tol,
        )
