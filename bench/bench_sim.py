"""Benchmark: simulated-exchange ticks per second (the exchange alone, no asyncio, no engine).

Scenarios:
- a: one underlying (BTC) with a perp and a short ATM straddle; the perp's book is watched.
- b: 1,000 options over 5 underlyings; one option book per underlying is watched, so every
  tick also prices all 1,000 options (the first option asked for prices them all).

For each, in the same run, every path from the same starting exchange:
- tick only: `tick(now)` with nobody asking for anything (the exchange's own per-tick cost);
- lazy: `tick(now)` and the watched books, as a watcher asks for them after each tick;
- eager (baseline): `tick(now)`, then every live instrument repriced one by one and its book
  rebuilt level by level in Python, as the exchange did on every tick before books went lazy.
Before timing, the lazy and eager books of the watched symbols must be equal.

    python bench/bench_sim.py [--seconds 1.0] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.instruments import Instrument, Kind, OptionType
from bot.core.market import BookLevel, OrderBook
from bot.venues.sim import book as bk
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.pricing import fair_value

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
TICK_MS = 1000
UNDERLYINGS = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "XRP": 2.0, "DOGE": 0.4}
EXPIRY_DAYS = (7, 14, 30, 60, 90)
STRIKES = 20  # per expiry, x call and put, x 5 expiries = 200 options per underlying


def scenario_a() -> tuple[SimExchange, list[str]]:
    cfg = SimConfig(seed=1, underlyings={"BTC": SimUnderlying(price=60_000.0)})
    straddle = [
        PositionConfig(
            underlying="BTC", kind="option", option_type=t, strike=60_000, expiry_days=30, qty=-1
        )
        for t in ("call", "put")
    ]
    perp = PositionConfig(underlying="BTC", kind="perp", qty=0.05)
    return SimExchange.create(cfg, [perp, *straddle], T0), ["BTC/USDT:USDT"]


def scenario_b() -> tuple[SimExchange, list[str]]:
    cfg = SimConfig(seed=1, underlyings={u: SimUnderlying(price=p) for u, p in UNDERLYINGS.items()})
    positions = [
        PositionConfig(
            underlying=u,
            kind="option",
            option_type=t,
            strike=round(p * (0.62 + 0.04 * i), 6),
            expiry_days=d,
            qty=0.1,
        )
        for u, p in UNDERLYINGS.items()
        for d in EXPIRY_DAYS
        for i in range(STRIKES)
        for t in ("call", "put")
    ]
    ex = SimExchange.create(cfg, positions, T0)
    watched = []
    for u, p in UNDERLYINGS.items():
        calls = [
            i
            for i in ex.instruments.values()
            if i.underlying == u and i.option_type is OptionType.CALL
        ]
        atm = min(calls, key=lambda i: (i.expiry_ms or 0, abs((i.strike or 0.0) - p)))
        watched.append(atm.symbol)
    return ex, watched


def eager_book(inst: Instrument, fair: float, index: float, ts: int, p: bk.BookParams) -> OrderBook:
    """The book as it was built before: level by level in Python (the baseline)."""
    tick = inst.price_step
    dec = bk.tick_decimals(tick)
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    for i in range(p.depth_levels):
        off = (p.spread_bps / 2.0 + i * p.level_step_bps) / 1e4
        ask = bk.to_tick(fair * (1.0 + off), tick, up=True)
        bid = bk.to_tick(fair * (1.0 - off), tick, up=False)
        if asks:
            ask = max(ask, round(asks[-1].price + tick, dec))
        if bids:
            bid = min(bid, round(bids[-1].price - tick, dec))
        elif bid >= ask:
            bid = round(ask - tick, dec)
        asks.append(BookLevel(ask, bk.level_amount(inst, ask, index, p.level_notional_usd)))
        if bid > 0.0:
            bids.append(BookLevel(bid, bk.level_amount(inst, bid, index, p.level_notional_usd)))
    return OrderBook(inst.symbol, ts, tuple(bids), tuple(asks))


def eager_reprice(ex: SimExchange) -> dict[str, OrderBook]:
    """Every live instrument priced one by one and its book rebuilt (the baseline's tick)."""
    ts = ex.market.ts_ms
    books = {}
    for sym, inst in ex.instruments.items():
        if sym in ex.expired:
            continue
        index = ex.market.prices[inst.underlying]
        fair = fair_value(inst, index, ex.params[inst.underlying].vol, ts)
        params = ex.option_book_params if inst.kind is Kind.OPTION else ex.book_params
        books[sym] = eager_book(inst, fair.mark, index, ts, params)
    return books


def rate(step: Callable[[int], None], seconds: float, repeats: int) -> float:
    """Best ticks per second over `repeats` runs of about `seconds` each (the best, because other
    load on the machine only ever slows a run down)."""
    best = 0.0
    now = T0 + TICK_MS
    for _ in range(repeats):
        n, batch = 0, 1
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            for _ in range(batch):
                now += TICK_MS
                step(now)
            n += batch
            batch = min(2 * batch, 64)  # slow ticks (the baseline) stop on time
        best = max(best, n / elapsed)
    return best


def run(
    name: str, make: Callable[[], tuple[SimExchange, list[str]]], a: argparse.Namespace
) -> None:
    ex, watched = make()
    ex.tick(T0 + TICK_MS)
    eager = eager_reprice(ex)
    for sym in watched:
        if ex.book(sym) != eager[sym]:
            raise SystemExit(f"{name}: lazy and eager books of {sym} differ")
    options = sum(1 for i in ex.instruments.values() if i.kind is Kind.OPTION)
    print(f"scenario {name}: {len(ex.instruments)} instruments ({options} options), ", end="")
    print(f"watched books: {', '.join(watched)}")

    def tick_only(now: int) -> None:
        ex.tick(now)

    def lazy(now: int) -> None:
        ex.tick(now)
        for sym in watched:
            ex.book(sym)

    def baseline(now: int) -> None:
        ex.tick(now)
        eager_reprice(ex)

    rates = {}
    for label, step, seconds in (
        ("tick only", tick_only, a.seconds),
        ("lazy + watched", lazy, a.seconds),
        ("eager (baseline)", baseline, a.seconds / 2),
    ):
        ex, watched = make()  # each path from the same start
        rates[label] = rate(step, seconds, a.repeats)
        r = rates[label]
        print(f"  {label:17s}{r:12,.0f} ticks/s {1e6 / r:10.1f} us/tick")
    print(f"  lazy / eager     {rates['lazy + watched'] / rates['eager (baseline)']:12,.1f} x")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="per timed run")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs; the best counts")
    a = ap.parse_args()
    run("a", scenario_a, a)
    run("b", scenario_b, a)


if __name__ == "__main__":
    main()
