"""Benchmark: the engine's per-tick hot path (exposure -> policy -> planner) for one underlying.

Compares, in the same run and on the same book:
- hedgebot: columns and quantity/IV arrays built once (as the hedger's view keeps them), the
  exposure, policy and plan on every tick;
- baseline: what a per-position script does, a Python loop pricing each position on each tick.
Both must agree on delta before timings are printed.

Then two figures of the exposure alone (issue 8), on arrays as the hedger keeps them:
- exposure vs the Black-Scholes kernel alone (greeks.black_scholes over the same options),
  for books of --kernel-sizes options: the target is within 1.5x at 2,000;
- a 10-option book vs the plain scalar loop: the target is no slower.

    python bench/bench_tick.py [--sizes 10 100 1000] [--kernel-sizes 10 2000] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np

from bot.core.book import Columns, exposure, exposure_of
from bot.core.greeks import black_scholes, year_fraction, year_fractions
from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import UnderlyingMarket
from bot.core.planner import plan
from bot.core.policy import BandPolicy, decide

NOW_MS = 1_767_225_600_000
DAY_MS = 86_400_000


def make_book(
    n: int, seed: int
) -> tuple[dict[tuple[str, str], Instrument], dict[tuple[str, str], float]]:
    rng = np.random.default_rng(seed)
    lines: dict[tuple[str, str], Instrument] = {}
    qty: dict[tuple[str, str], float] = {}
    perp = Instrument("BTC/USDT:USDT", "BTC", Kind.PERP, amount_step=0.001)
    lines[("a", perp.symbol)] = perp
    qty[("a", perp.symbol)] = -3.0
    for i in range(n):
        inverse = bool(rng.random() < 0.5)
        call = bool(rng.random() < 0.5)
        strike = float(rng.choice(np.arange(30_000, 90_001, 1_000)))
        days = float(rng.integers(1, 180))
        ins = Instrument(
            f"BTC-{i}",
            "BTC",
            Kind.OPTION,
            Settlement.INVERSE if inverse else Settlement.LINEAR,
            expiry_ms=NOW_MS + int(days * DAY_MS),
            strike=strike,
            option_type=OptionType.CALL if call else OptionType.PUT,
        )
        lines[("a", ins.symbol)] = ins
        qty[("a", ins.symbol)] = float(rng.normal(0, 5))
    return lines, qty


def scalar_delta(
    lines: dict[tuple[str, str], Instrument],
    qty: dict[tuple[str, str], float],
    s: float,
    vol: float,
    now_ms: int,
) -> float:
    total = 0.0
    for key, ins in lines.items():
        q = qty.get(key, 0.0)
        if ins.kind is not Kind.OPTION:
            total += q * ins.coin_delta_per_contract(s)
            continue
        t = year_fraction(ins.expiry_ms or 0, now_ms)
        k = ins.strike or 0.0
        d1 = (math.log(s / k) + 0.5 * vol * vol * t) / (vol * math.sqrt(t))
        d2 = d1 - vol * math.sqrt(t)
        nd1 = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
        nd2 = 0.5 * (1 + math.erf(d2 / math.sqrt(2)))
        call = ins.option_type is OptionType.CALL
        delta = nd1 if call else nd1 - 1
        price = s * nd1 - k * nd2 if call else k * (1 - nd2) - s * (1 - nd1)
        if ins.is_inverse:
            delta -= price / s
        total += q * delta * ins.contract_size
    return total


def rate(fn: Callable[[], object], seconds: float, batch: int = 20) -> float:
    """Calls per second of `fn`, from the fastest batch of `batch` calls within `seconds`: the
    best batch is the least disturbed by other load on a shared machine."""
    best, start = math.inf, time.perf_counter()
    while time.perf_counter() - start < seconds:
        t0 = time.perf_counter()
        for _ in range(batch):
            fn()
        best = min(best, (time.perf_counter() - t0) / batch)
    return 1.0 / best


def measure(n: int, seconds: float) -> tuple[float, float]:
    """(hedgebot ticks/s, baseline ticks/s) for a book of n options plus a perp."""
    pol = BandPolicy(band=0.5)
    lines, qty = make_book(n, seed=n)
    cols = Columns.of("BTC", lines)
    perp = lines[("a", "BTC/USDT:USDT")]
    prices = iter(np.random.default_rng(1).normal(60_000, 300, 10_000_000))

    held = cols.quantities(qty)  # as the hedger's view keeps them, updated in place
    pending = np.zeros(len(cols.keys))
    iv = np.where(cols.is_option, 0.6, np.nan)

    def ours() -> None:
        s = float(next(prices))
        m = UnderlyingMarket("BTC", NOW_MS, s, 0.6)
        e = exposure_of(cols, held, pending, s, iv, 0.0, NOW_MS, "usd", 0.0, NOW_MS)
        plan(decide(pol, e, m, NOW_MS, order_in_flight=False), perp, s, "cid")

    def baseline() -> None:
        scalar_delta(lines, qty, float(next(prices)), 0.6, NOW_MS)

    check = exposure(cols, qty, {}, UnderlyingMarket("BTC", NOW_MS, 61_000, 0.6), NOW_MS, "usd")
    ref = scalar_delta(lines, qty, 61_000, 0.6, NOW_MS)
    assert math.isclose(check.delta_coin, ref, rel_tol=1e-9, abs_tol=1e-9), (check, ref)
    return rate(ours, seconds), rate(baseline, seconds)


def measure_exposure(n: int, seconds: float) -> tuple[float, float, float]:
    """(exposure ticks/s, kernel-alone calls/s, scalar-loop ticks/s) for n options + a perp."""
    lines, qty = make_book(n, seed=n)
    cols = Columns.of("BTC", lines)
    held = cols.quantities(qty)
    pending = np.zeros(len(cols.keys))
    iv = np.where(cols.is_option, 0.6, np.nan)
    opt = cols.opt
    strike, expiry, calls = cols.strike[opt], cols.expiry_ms[opt], cols.is_call[opt]
    vols = iv[opt]
    prices = iter(np.random.default_rng(2).normal(60_000, 300, 10_000_000).tolist())

    def ours() -> None:
        exposure_of(cols, held, pending, next(prices), iv, 0.0, NOW_MS, "usd")

    def kernel() -> None:
        black_scholes(next(prices), strike, year_fractions(expiry, NOW_MS), 0.0, vols, calls)

    def scalar() -> None:
        scalar_delta(lines, qty, next(prices), 0.6, NOW_MS)

    check = exposure_of(cols, held, pending, 61_000.0, iv, 0.0, NOW_MS, "usd").delta_coin
    ref = scalar_delta(lines, qty, 61_000, 0.6, NOW_MS)
    assert math.isclose(check, ref, rel_tol=1e-9, abs_tol=1e-9), (check, ref)
    return rate(ours, seconds), rate(kernel, seconds), rate(scalar, seconds)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000])
    ap.add_argument("--kernel-sizes", type=int, nargs="+", default=[10, 100, 2000])
    ap.add_argument("--seconds", type=float, default=0.5)
    args = ap.parse_args()
    print(
        f"{'options':>8} {'hedgebot ticks/s':>17} {'baseline ticks/s':>17} {'speed-up':>9}"
        f" {'tick us':>8}"
    )
    for n in args.sizes:
        a, b = measure(n, args.seconds)
        print(f"{n:>8} {a:>17,.0f} {b:>17,.0f} {a / b:>8.1f}x {1e6 / a:>8.1f}")
    print()
    print(
        f"{'options':>8} {'exposure us':>12} {'BS kernel us':>13} {'exp/kernel':>11}"
        f" {'scalar loop us':>15} {'exp/scalar':>11}"
    )
    for n in args.kernel_sizes:
        e, k, sc = measure_exposure(n, args.seconds)
        print(
            f"{n:>8} {1e6 / e:>12.1f} {1e6 / k:>13.1f} {k / e:>10.2f}x"
            f" {1e6 / sc:>15.1f} {sc / e:>10.2f}x"
        )


if __name__ == "__main__":
    main()
