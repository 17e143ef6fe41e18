"""The venue's option deltas beside our own (engine.greeks_source = venue or both): both totals
per underlying at each exposure, what trading on the venue's adds to ours, and the alert when
the two diverge."""

from __future__ import annotations

from collections.abc import Callable

from bot.config import EngineConfig
from bot.core.book import Columns, FloatArray, LineKey, option_scalar
from bot.core.greeks import MS_PER_YEAR
from bot.core.market import Ticker, UnderlyingMarket

Emit = Callable[..., None]


class VenueGreeks:
    def __init__(
        self,
        engine: Callable[[], EngineConfig],
        ticker_for: Callable[[LineKey], Ticker | None],
        emit: Emit,
    ) -> None:
        self._engine = engine
        self._ticker_for = ticker_for
        self._emit = emit
        self._diverged: dict[str, bool] = {}
        self._last: dict[str, tuple[float, float]] = {}  # own, venue (coin)

    def deltas(
        self,
        underlying: str,
        cols: Columns,
        held: FloatArray,
        iv: FloatArray,
        mkt: UnderlyingMarket,
        now: int,
    ) -> tuple[float, float]:
        """(own, venue) option delta in coin over the underlying's option lines held, kept as
        the last seen. A line whose ticker has no venue delta counts its own delta on both
        sides (Halts.reason refuses to trade on `venue` greeks with one missing)."""
        own = venue = 0.0
        for i in cols.opt.tolist():
            qty = float(held[i])
            if qty == 0.0:
                continue
            t = max(int(cols.expiry_ms[i]) - now, 0) / MS_PER_YEAR
            d = option_scalar(
                mkt.index,
                float(cols.strike[i]),
                t,
                mkt.rate,
                float(iv[i]),
                bool(cols.is_call[i]),
                bool(cols.is_inverse[i]),
            )[0]
            mine = qty * d * float(cols.contract_size[i])
            ticker = self._ticker_for(cols.keys[i])
            own += mine
            vd = ticker.venue_delta if ticker is not None else None
            venue += qty * vd if vd is not None else mine
        self._last[underlying] = (own, venue)
        return own, venue

    def shift(self, underlying: str) -> float:
        """What greeks_source = venue added to the options' delta in the last exposure (coin)."""
        if self._engine().greeks_source != "venue":
            return 0.0
        own, venue = self._last.get(underlying, (0.0, 0.0))
        return venue - own

    def check(self, underlying: str) -> None:
        """greeks_source = both: trade on our own greeks, alert when the venue's differ by more
        than greeks_divergence_tol relative to the larger of the two totals and more than
        greeks_divergence_min_coin (so a near-empty book does not alert on noise). Relative,
        because the acceptable model difference grows with the position; one alert per
        crossing, and a state event when they agree again."""
        deltas = self._last.get(underlying)
        if deltas is None:
            return
        own, venue = deltas
        eng = self._engine()
        gap = abs(own - venue)
        diverged = gap > eng.greeks_divergence_tol * max(abs(own), abs(venue)) and (
            gap > eng.greeks_divergence_min_coin
        )
        if diverged == self._diverged.get(underlying, False):
            return
        self._diverged[underlying] = diverged
        self._emit(
            "alert" if diverged else "state",
            "greeks.diverged" if diverged else "greeks.agree",
            underlying=underlying,
            own_delta_coin=own,
            venue_delta_coin=venue,
            tol=eng.greeks_divergence_tol,
        )
