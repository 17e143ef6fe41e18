"""A fast-forward span's test that every fed option stays validly quoted (backtest/quoted.py),
over all options at once, against its definition option by option."""

from __future__ import annotations

import random

from bot.backtest.quoted import MARGIN, stay_quoted
from bot.core.greeks import black_scholes, year_fraction
from bot.core.instruments import Kind, OptionType
from bot.venues.sim import SimVenue
from bot.venues.sim import book as bk
from bot.venues.sim.pricing import option_fair
from tests.test_sim_tickers import T0, chain
from tests.test_sim_venue import ManualClock


def one_by_one(
    venue: SimVenue, lines: list[tuple[str, str]], band: dict[str, tuple[float, float]], to: int
) -> bool:
    """Each fed option, a call at its band's low and a put at its high at `to`: a MARGIN-th of
    its value still has a mark and an ask above 0."""
    ex = venue.exchange
    q = ex.quotes
    for _, symbol in lines:
        inst = ex.instruments[symbol]
        if symbol in ex.expired or inst.kind is not Kind.OPTION:
            continue
        assert inst.strike is not None and inst.expiry_ms is not None
        call = inst.option_type is OptionType.CALL
        now = q.index(inst.underlying)
        lo, hi = band.get(inst.underlying, (now, now))
        index = lo if call else hi
        vol = q.vols[inst.underlying]
        t = year_fraction(inst.expiry_ms, to)
        price = float(black_scholes(index, inst.strike, t, 0.0, vol, call).price) / MARGIN
        mark = option_fair(inst, index, vol, price, 0.0).mark
        if not (mark > 0.0 and bk.top_of_book(inst, mark, q.option_params)[1] > 0.0):
            return False
    return True


def test_stay_quoted_agrees_with_each_option_on_its_own() -> None:
    cfg, positions = chain()
    venue = SimVenue("sim", cfg, positions, ManualClock(T0), run_market=False)
    ex = venue.exchange
    rnd = random.Random(4)
    answers = []
    for n in range(1, 300):
        ex.tick(T0 + n * 600_000)
        live = [("sim", s) for s in ex.instruments if ex.is_live(s)]
        lines = [*rnd.sample(live, rnd.randint(1, 12)), ("other", "NOT/LISTED")]
        band = {
            u: (ex.quotes.index(u) * rnd.uniform(0.2, 1.0), ex.quotes.index(u) * rnd.uniform(1, 4))
            for u in rnd.sample(["BTC", "ETH", "DOGE"], rnd.randint(0, 3))
        }
        to = ex.quotes.ts_ms + rnd.choice([0, 60_000, 3_600_000, 40 * 86_400_000])
        want = one_by_one(venue, [k for k in lines if k[0] == "sim"], band, to)
        assert stay_quoted({"sim": venue}, lines, band, to) is want, n
        answers.append(want)
    assert 10 < sum(answers) < len(answers) - 10  # both answers, many times
