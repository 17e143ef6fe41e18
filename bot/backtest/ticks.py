"""What one backtest tick does besides moving the market: feed the hedger, attribute the move,
count the decisions, sample the picture's series. The full tick (path.py) and the fast-forward
over quiet ticks (fastforward.py) both go through these, so they count alike.
"""

from __future__ import annotations

from dataclasses import replace
from itertools import groupby
from operator import itemgetter
from typing import TYPE_CHECKING

from bot.backtest.attribution import Attribution
from bot.backtest.recorder import Recorder
from bot.core.book import Exposure, LineKey
from bot.core.market import UnderlyingMarket
from bot.hedger.hedger import Hedger
from bot.venues.sim import SimVenue

if TYPE_CHECKING:
    from bot.backtest.path import PathResult


def feed(hedger: Hedger, venues: dict[str, SimVenue], hedge_lines: list[LineKey]) -> None:
    """Every line's ticker and each hedge line's book, as the venue shows them now: the
    tickers in the lines' order, a run of lines of one venue at a time."""
    fed = [
        (a, s) for a, s in hedger.view.lines if a in venues and s not in venues[a].exchange.expired
    ]
    for account, run in groupby(fed, key=itemgetter(0)):
        symbols = [s for _, s in run]
        hedger.on_tickers(account, venues[account].exchange.tickers(symbols))
    for account, symbol in hedge_lines:
        hedger.on_book(account, venues[account].exchange.book(symbol))


def note(result: PathResult, hedger: Hedger, underlyings: list[str], n: int = 1) -> None:
    """Count this tick (`n` ticks with no decision between them) against each underlying's
    latest decision."""
    for u in underlyings:
        d = hedger.last_decision.get(u)
        if d is None or d.reason in ("no_market_data",) or d.reason.startswith("cross_"):
            continue  # a cross-hedged underlying's band is not what hedges it
        result.ticks_decided += n
        drift = abs(d.delta - d.target)
        result.ticks_in_band += n * (drift <= d.band)
        result.max_abs_drift = max(result.max_abs_drift, drift)
        coin = d.delta if d.unit == "coin" else d.delta / d.price
        result.max_abs_delta_coin = max(result.max_abs_delta_coin, abs(coin))


def mean_iv(market: UnderlyingMarket) -> float:
    """The options' mean implied volatility (NaN without options: no vega)."""
    ivs = market.option_iv.values()
    return sum(ivs) / len(ivs) if ivs else market.vol


def held(
    hedger: Hedger, u: str, at: tuple[UnderlyingMarket, int] | None = None
) -> tuple[Exposure, float] | None:
    """The exposure of what is held (in-flight orders are not), and the IV it was valued at;
    `at`: on that market at that clock ms (view.snapshot) instead of the latest."""
    now = hedger.view.snapshot(u, at=at)
    if now is None:
        return None
    e, market = now
    # a cross hedge's share is another underlying's delta, attributed there
    coin = e.delta_coin - e.in_flight_coin - hedger.cross.coin_onto(u)
    iv = mean_iv(hedger.view.market_with_ivs(u) or market)
    return replace(e, delta_coin=coin, delta_usd=coin * e.price, in_flight_coin=0.0), iv


def attribute(
    attribution: Attribution,
    hedger: Hedger,
    before: dict[str, tuple[Exposure, float] | None],
    dt_ms: int,
) -> None:
    """This tick's move against the book held before it."""
    for u, was in before.items():
        market = hedger.view.market_with_ivs(u)  # the IVs too: vega P&L
        if was is not None and market is not None:
            attribution.step(was[0], was[1], market.index, mean_iv(market), dt_ms)


def first_move(
    attribution: Attribution,
    hedger: Hedger,
    underlyings: list[str],
    start: dict[str, float],
    dt_ms: int,
) -> None:
    """The first tick's move has no exposure before it (the hedger had no market yet): the
    book's greeks at the first price, delta taken back to the start price along gamma."""
    for u in underlyings:
        now = held(hedger, u)
        if now is None or not start[u] > 0:
            continue
        e, iv = now
        delta = e.delta_coin - e.gamma_coin * (e.price - start[u])
        before = replace(e, price=start[u], delta_coin=delta, delta_usd=delta * start[u])
        attribution.step(before, iv, e.price, iv, dt_ms)


def sample(result: PathResult, hedger: Hedger, recorder: Recorder, u: str, hours: float) -> None:
    """One point of the picture's series, from the latest decision."""
    d = hedger.last_decision.get(u)
    if d is None:
        return
    result.series.unit = d.unit
    cost = recorder.fees_usd + recorder.slippage_usd
    b = d.bounds
    result.series.add(hours, d.price, d.delta, b.center, b.lower, b.upper, cost)
