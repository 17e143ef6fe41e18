"""Benchmark: what routing adds to a trading decision.

Routing runs only when a decision trades (never on the per-tick path that does not), once per
order: every candidate's cost (a walk of its live book for the order's size) and the split.
Compared in the same run with the baseline, planning the order on one instrument (what a hedge
without candidates does), for 2, 5 and 10 candidates with --levels-deep books.

    python bench/bench_routing.py [--candidates 2 5 10] [--levels 20] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from dataclasses import replace

from bot.core.book import Exposure
from bot.core.instruments import Instrument, Kind
from bot.core.market import BookLevel, FundingRate, OrderBook, UnderlyingMarket
from bot.core.planner import plan
from bot.core.policy import BandPolicy, decide
from bot.core.routing import Candidate, route

PRICE = 60_000.0
NOW_MS = 1_767_225_600_000


def book(symbol: str, spread_bps: float, levels: int) -> OrderBook:
    half, step = PRICE * spread_bps / 20_000, PRICE / 10_000
    bids = tuple(BookLevel(PRICE - half - i * step, 0.5) for i in range(levels))
    asks = tuple(BookLevel(PRICE + half + i * step, 0.5) for i in range(levels))
    return OrderBook(symbol, NOW_MS, bids, asks)


def candidates(n: int, levels: int) -> list[Candidate]:
    out = []
    for i in range(n):
        ins = Instrument("BTC/USDT:USDT", "BTC", Kind.PERP, amount_step=0.001, taker_fee=0.0003)
        out.append(
            Candidate(
                (f"acct{i}", ins.symbol),
                ins,
                book(ins.symbol, 2.0 + i, levels),
                0.0,
                2.0 + i,
                FundingRate(0.0001 * (i - 1), 8.0, NOW_MS),
                True,
            )
        )
    return out


def per_call_us(fn: Callable[[], object], seconds: float) -> float:
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        for _ in range(100):
            fn()
        n += 100
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--candidates", type=int, nargs="+", default=[2, 5, 10])
    p.add_argument("--levels", type=int, default=20)
    p.add_argument("--seconds", type=float, default=0.5)
    a = p.parse_args()
    exp = Exposure("BTC", NOW_MS, PRICE, -4.0, -4.0 * PRICE, 0.0, 0.0, 0.0, 0.0)
    mkt = UnderlyingMarket("BTC", NOW_MS, PRICE, 0.6)
    d = decide(BandPolicy(band=0.5), exp, mkt, NOW_MS, order_in_flight=False)
    assert d.trade
    hedge = candidates(1, a.levels)[0].instrument
    base = per_call_us(lambda: plan(d, hedge, PRICE, "cid"), a.seconds)
    print(f"baseline: plan on one instrument          {base:8.1f} us per order")
    for n in a.candidates:
        cs = candidates(n, a.levels)
        r = route(d.gap_coin, PRICE, cs, 8.0, NOW_MS)
        legs = [(g.key, g.coin) for g in r.legs]
        assert abs(sum(c for _, c in legs) - d.gap_coin) < 1e-9

        def routed(cs: list[Candidate] = cs) -> None:
            for g in route(d.gap_coin, PRICE, cs, 8.0, NOW_MS).legs:
                plan(replace(d, gap_coin=g.coin), hedge, PRICE, "cid")  # per leg, as the hedger

        t = per_call_us(routed, a.seconds)
        print(
            f"routing:  {n:2d} candidates, {len(legs)} leg(s)          {t:8.1f} us per order"
            f"  ({t / base:5.1f}x the baseline, +{t - base:.1f} us)"
        )


if __name__ == "__main__":
    main()
