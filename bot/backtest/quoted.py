"""Do the fed options stay validly quoted over a fast-forward span? (pure over the sim's quotes)

A span does not feed the options' tickers, so it must not step over a tick at which one would
start or stop being rejected as bad data (an ask or mark of 0: an option worth less than a
billionth of its tick), since the hedger alerts at that transition. The sim prices options with
Black-Scholes at no rate, so an option's mark only falls as its index moves against it (calls
down, puts up, in USD and in coin alike) and as time passes: its least value over a span inside
the corridors [lo, hi] until `horizon_ms` is at the far edge at the horizon. When every fed
option is still worth 1,000 times that threshold there, none turns bad within the span; one
that is bad already, or could be, ends fast-forwarding until it is settled by expiry.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import numpy as np

from bot.core.book import LineKey
from bot.core.instruments import Kind
from bot.venues.sim import SimVenue
from bot.venues.sim.pricing import option_fairs, option_marks

MARGIN = 1_000.0  # how far above the rejection threshold every option must stay


def stay_quoted(
    venues: Mapping[str, SimVenue],
    lines: Iterable[LineKey],
    band: Mapping[str, tuple[float, float]],
    horizon_ms: int,
) -> bool:
    """True when every fed option line's ticker (the hedger's lines, as ticks.feed feeds them)
    stays valid for any index of its underlying in `band` (lo, hi) and any time up to
    `horizon_ms`."""
    by_venue: dict[str, list[str]] = {}
    for account, symbol in lines:
        v = venues.get(account)
        if v is None or symbol in v.exchange.expired:
            continue
        ins = v.exchange.quotes.instruments.get(symbol)
        if ins is not None and ins.kind is Kind.OPTION:
            by_venue.setdefault(account, []).append(symbol)
    for account, symbols in by_venue.items():
        q = venues[account].exchange.quotes
        slot = {u: n for n, u in enumerate(q.names)}
        low = list(q.prices)  # each underlying at its corridor's low (calls' worst) ...
        high = list(q.prices)  # ... and high (puts' worst); others as they stand
        for u, (lo, hi) in band.items():
            if u in slot:
                low[slot[u]], high[slot[u]] = lo, hi
        calls, _ = option_marks(q.options, low, horizon_ms)
        puts, _ = option_marks(q.options, high, horizon_ms)
        zero = np.zeros(len(calls))
        # every option at its worst edge (calls low, puts high), a MARGIN-th of its value
        low_marks, _ = option_fairs(q.options, low, calls / MARGIN, zero)
        high_marks, _ = option_fairs(q.options, high, puts / MARGIN, zero)
        marks = np.where(q.options.sign > 0.0, low_marks, high_marks)
        _, asks = q.option_tops(marks)
        fed = [q.option_at[s] for s in symbols]
        if not (marks[fed] > 0.0).all() or not all(asks[n] > 0.0 for n in fed):
            return False
    return True
