"""Benchmark: tick -> executor send latency, in process (issue 8).

A Hedger with the real risk gate, executor and simulated exchange (5 underlyings, --options
option lines spread over them, a linear perp hedge each) on a VirtualClock gets --rate tickers
per second of clock time: every --index-every-th one a hedge line's ticker whose index follows a
mean-reverting walk (it crosses the band now and then, so orders go out), the others option
tickers (unchanged IV). Each tick is handled as the daemon does, on_ticker then decide_dirty,
and timed with perf_counter: from the on_ticker call to the executor's submit for ticks that
send, and to the end of the decision for every tick. Run with the trigger corridor off (the
baseline) and on; the sends must be the same.

    python bench/bench_latency.py [--seconds 10] [--rate 2000] [--options 1000]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import math
import random
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from bot import logs
from bot.backtest.cli import START_MS
from bot.backtest.rig import pump
from bot.clock import VirtualClock, run_virtual
from bot.config import Settings, load_settings
from bot.core.book import LineKey
from bot.core.instruments import Instrument, Kind
from bot.core.market import BookLevel, OrderBook, Ticker
from bot.events import EventBus
from bot.hedger.hedger import Hedger
from bot.shell.positions import PositionWatch
from bot.shell.reconcile import Reconciler
from bot.venues.sim import SimVenue

UNDERLYINGS = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 150.0, "XRP": 0.6, "DOGE": 0.15}


def config(options: int) -> str:
    """5 underlyings, `options` short options over them (strikes around the money, expiries
    from a week to a quarter), a tight band so the walk trades."""
    rng = random.Random(5)
    out = [
        'bot_id = "latency"',
        "[engine]\nstale_after_s = 60\nreconcile_interval_s = 3600",
        "[execution]\nmax_slippage_bps = 50\nmax_fee_bps = 10\norder_timeout_s = 5",
        "[risk]\nmax_order_notional_usd = 1e12\nmax_order_contracts = 1e9\n"
        "max_orders_per_minute = 100000\nprice_collar_bps = 1000",
        "[sim]\nseed = 3\nlatency_ms = 20\nlevel_notional_usd = 1e9\nreject_rate = 0.0",
        "[accounts.sim]\nexchange = 'sim'",
    ]
    for u, price in UNDERLYINGS.items():
        out.append(f"[sim.underlyings.{u}]\nprice = {price}\nvol = 0.6")
    names = list(UNDERLYINGS)
    for i in range(options):
        u = names[i % len(names)]
        strike = UNDERLYINGS[u] * rng.choice([0.8, 0.9, 0.95, 1.0, 1.05, 1.1, 1.2])
        out.append(
            "[[positions]]\n"
            f'underlying = "{u}"\nkind = "option"\n'
            f'option_type = "{rng.choice(["call", "put"])}"\n'
            f"strike = {strike:.6g}\nexpiry_days = {rng.choice([7, 14, 30, 60, 90])}\n"
            f"qty = {-rng.randint(1, 5)}"
        )
    for u, price in UNDERLYINGS.items():
        band = 2.0 * 60_000.0 / price * 0.02  # coin: a similar USD width on every underlying
        out.append(
            f'[hedge.{u}]\naccount = "sim"\ninstrument = "{u}/USDT:USDT"\n'
            f'[hedge.{u}.policy]\nkind = "band"\nband = {band:.6g}'
        )
    return "\n".join(out) + "\n"


def book_of(symbol: str, ts: int, mid: float) -> OrderBook:
    half = mid * 1e-4
    return OrderBook(symbol, ts, (BookLevel(mid - half, 1e6),), (BookLevel(mid + half, 1e6),))


async def drive(
    settings: Settings, seconds: float, rate: int, every: int, step: float
) -> dict[str, Any]:
    clock = VirtualClock(START_MS)
    venues = {
        n: SimVenue(n, settings.sim, settings.positions, clock, run_market=False)
        for n in settings.accounts
    }
    catalog: dict[LineKey, Instrument] = {}
    hedger = Hedger(settings, venues, catalog, clock, EventBus(), None)
    for name, venue in venues.items():
        await venue.connect()
        for symbol, ins in (await venue.load_instruments()).items():
            catalog[(name, symbol)] = ins
    hedge_lines = hedger.add_hedge_lines()
    await Reconciler(
        venues, hedger, PositionWatch(venues, hedger, 0, lambda: None), clock, None
    ).reconcile(initial=True)
    pumps = [asyncio.ensure_future(pump(n, v, hedger)) for n, v in venues.items()]
    sent_at: list[float] = []
    real_submit = hedger.executor.submit

    def submit(*args: Any, **kw: Any) -> Any:
        sent_at.append(time.perf_counter())
        return real_submit(*args, **kw)

    hedger.executor.submit = submit  # type: ignore[method-assign]
    gc.collect()
    gc.freeze()  # what start-up allocated stays out of the collector's walks (as a daemon would)
    options = [k for k in hedger.view.lines if catalog[k].kind is Kind.OPTION]
    tickers = {k: venues[k[0]].exchange.ticker(k[1]) for k in options}
    rng = np.random.default_rng(11)
    price = {k: UNDERLYINGS[catalog[k].underlying] for k in hedge_lines}
    for key in options:  # every option has its IV before the clock starts
        hedger.on_ticker(key[0], tickers[key])
    for key in hedge_lines:
        p = price[key]
        hedger.on_ticker(key[0], Ticker(key[1], START_MS, p * 0.9999, p * 1.0001, p, p, p))
        hedger.on_book(key[0], book_of(key[1], START_MS, p))
    hedger.decide_dirty()
    step_ms = 1000.0 / rate
    n = int(seconds * rate)
    all_us, send_us, cpu_us, cpu_send_us = [], [], [], []
    t_ms = float(START_MS)
    for i in range(n):
        t_ms += step_ms
        now = int(t_ms)
        await clock.advance_to(now)
        if i % every == 0:
            key = hedge_lines[(i // every) % len(hedge_lines)]
            p0 = UNDERLYINGS[catalog[key].underlying]
            # mean-reverting around the sim's price (whose book fills the orders), the band
            # crossed now and then
            price[key] += 0.05 * (p0 - price[key]) + p0 * step * float(rng.standard_normal())
            mid = price[key]
            tick = Ticker(key[1], now, mid * 0.9999, mid * 1.0001, mid, mid, mid)
            book = book_of(key[1], now, mid)
            hedger.on_book(key[0], book)
            account = key[0]
        else:
            key = options[i % len(options)]
            tick = Ticker(**{**_fields(tickers[key]), "ts_ms": now})
            account = key[0]
        before = len(sent_at)
        cpu0 = time.thread_time_ns()
        start = time.perf_counter()
        hedger.on_ticker(account, tick)
        hedger.decide_dirty()
        end = time.perf_counter()
        cpu = (time.thread_time_ns() - cpu0) / 1e3
        all_us.append((end - start) * 1e6)
        cpu_us.append(cpu)
        if len(sent_at) > before:
            send_us.append((sent_at[before] - start) * 1e6)
            cpu_send_us.append(cpu)  # CPU of the whole tick: an upper bound to the send
    for task in pumps:
        task.cancel()
    await asyncio.gather(*pumps, return_exceptions=True)
    await hedger.executor.close()
    for venue in venues.values():
        await venue.close()
    return {
        "all": all_us,
        "send": send_us,
        "cpu": cpu_us,
        "cpu_send": cpu_send_us,
        "ticks": n,
        "orders": hedger.executor.orders_sent,
    }


def _fields(t: Ticker) -> dict[str, Any]:
    return {f: getattr(t, f) for f in Ticker.__slots__}  # type: ignore[attr-defined]


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) if values else math.nan


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0, help="clock seconds of ticks")
    ap.add_argument("--rate", type=int, default=2000, help="tickers per clock second")
    ap.add_argument("--options", type=int, default=1000)
    ap.add_argument("--index-every", type=int, default=4, help="every n-th ticker moves an index")
    ap.add_argument("--step", type=float, default=0.001, help="index move per ticker (relative)")
    args = ap.parse_args()
    logs.configure("error", "console")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "latency.toml"
        path.write_text(config(args.options))
        base = load_settings(path)
    print(
        f"{args.options} options over {len(UNDERLYINGS)} underlyings, {args.rate:,} tickers/s"
        f" for {args.seconds:g} s of clock time (in-process, VirtualClock)"
    )
    print(
        "wall: perf_counter from on_ticker to the executor's submit (sends) or to the end of the"
        " decision (ticks); on a shared machine its p99 includes time the process waited for a"
        " core. cpu: this thread's CPU time for the tick (sends: the whole tick, an upper bound)."
    )
    print(
        f"{'corridor':>9} {'sends':>6} {'send p50':>9} {'send p99':>9} {'cpu p50':>8}"
        f" {'cpu p99':>8} {'tick p50':>9} {'tick p99':>9} {'cpu p50':>8} {'cpu p99':>8}"
        f" {'busy':>6}   (us)"
    )
    sends = {}
    for on in (False, True):
        eng = base.engine.model_copy(update={"corridor": on})
        s = base.model_copy(update={"engine": eng})
        r = run_virtual(lambda s=s: drive(s, args.seconds, args.rate, args.index_every, args.step))
        sends[on] = r["orders"]
        busy = sum(r["cpu"]) / 1e6 / args.seconds
        print(
            f"{'on' if on else 'off':>9} {len(r['send']):>6} {pct(r['send'], 50):>9.1f}"
            f" {pct(r['send'], 99):>9.1f} {pct(r['cpu_send'], 50):>8.1f}"
            f" {pct(r['cpu_send'], 99):>8.1f} {pct(r['all'], 50):>9.1f} {pct(r['all'], 99):>9.1f}"
            f" {pct(r['cpu'], 50):>8.1f} {pct(r['cpu'], 99):>8.1f} {busy:>6.0%}"
        )
    assert sends[False] == sends[True], f"the corridor changed the orders sent: {sends}"


if __name__ == "__main__":
    main()
