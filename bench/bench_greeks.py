"""Benchmark: vectorized Black-Scholes greeks vs a scalar Python loop (math module).

Both compute price, delta, gamma, vega and theta for the same random book of options in the same
run; the scalar results are checked against the vectorized ones before timing is reported.

    python bench/bench_greeks.py [--sizes 10 1000 100000] [--seconds 0.5] [--seed 7]

At 100,000 options each temporary array is 800 kB; glibc serves such blocks with mmap and hands
them back on free, so page faults cost about as much as the arithmetic (try
MALLOC_MMAP_THRESHOLD_=100000000 to see the difference). The rest is mostly scipy's ndtr.
"""

from __future__ import annotations

import argparse
import math
import platform
import sys
import time
from collections.abc import Callable

import numpy as np
import numpy.typing as npt

from bot.core.greeks import black_scholes

FloatArray = npt.NDArray[np.float64]
Row = tuple[float, float, float, float, float]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


def scalar_greeks(s: float, k: float, t: float, r: float, sigma: float, is_call: bool) -> Row:
    """One option with the math module: (price, delta, gamma, vega, theta), same units."""
    if t <= 0.0 or sigma <= 0.0:
        kdf = k * math.exp(-r * max(t, 0.0))
        if is_call:
            return max(s - kdf, 0.0), 1.0 if s > kdf else 0.0, 0.0, 0.0, 0.0
        return max(kdf - s, 0.0), -1.0 if s < kdf else 0.0, 0.0, 0.0, 0.0
    sqrt_t = math.sqrt(t)
    stddev = sigma * sqrt_t
    d1 = (math.log(s / k) + (r + 0.5 * sigma * sigma) * t) / stddev
    d2 = d1 - stddev
    kdf = k * math.exp(-r * t)
    pdf = math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    gamma = pdf / (s * stddev)
    vega = s * pdf * sqrt_t
    decay = -s * pdf * sigma / (2.0 * sqrt_t)
    if is_call:
        n1 = 0.5 * math.erfc(-d1 / _SQRT2)
        n2 = 0.5 * math.erfc(-d2 / _SQRT2)
        return s * n1 - kdf * n2, n1, gamma, vega, decay - r * kdf * n2
    m1 = 0.5 * math.erfc(d1 / _SQRT2)
    m2 = 0.5 * math.erfc(d2 / _SQRT2)
    return kdf * m2 - s * m1, -m1, gamma, vega, decay + r * kdf * m2


def make_book(n: int, rng: np.random.Generator) -> dict[str, npt.NDArray[np.generic]]:
    """A plausible options book on one coin: strikes around spot, hours to two years."""
    s = np.full(n, 60_000.0)
    return {
        "S": s,
        "K": s * np.exp(rng.uniform(np.log(0.3), np.log(3.0), n)),
        "T": np.exp(rng.uniform(np.log(1.0 / 8760.0), np.log(2.0), n)),
        "r": np.full(n, 0.03),
        "sigma": rng.uniform(0.2, 1.5, n),
        "is_call": rng.random(n) < 0.5,
    }


def best_time(fn: Callable[[], object], seconds: float) -> float:
    """Best seconds per call over repeated batches lasting about `seconds` in all."""
    fn()  # warm up
    start = time.perf_counter()
    fn()
    once = max(time.perf_counter() - start, 1e-7)
    per_batch = max(1, int(seconds / 5.0 / once))
    best = math.inf
    for _ in range(5):
        start = time.perf_counter()
        for _ in range(per_batch):
            fn()
        best = min(best, (time.perf_counter() - start) / per_batch)
    return best


def check_agreement(book: dict[str, npt.NDArray[np.generic]]) -> float:
    """Largest relative difference between the two implementations over all five greeks."""
    g = black_scholes(book["S"], book["K"], book["T"], book["r"], book["sigma"], book["is_call"])
    rows = [
        scalar_greeks(*args)
        for args in zip(
            book["S"].tolist(),
            book["K"].tolist(),
            book["T"].tolist(),
            book["r"].tolist(),
            book["sigma"].tolist(),
            book["is_call"].tolist(),
            strict=True,
        )
    ]
    worst = 0.0
    for i, name in enumerate(("price", "delta", "gamma", "vega", "theta")):
        ref = np.array([row[i] for row in rows])
        got: FloatArray = getattr(g, name)
        scale = max(float(np.max(np.abs(ref))), 1e-300)
        worst = max(worst, float(np.max(np.abs(got - ref))) / scale)
    return worst


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 1_000, 100_000])
    parser.add_argument("--seconds", type=float, default=0.5, help="timing budget per measurement")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args(argv)

    rng = np.random.default_rng(args.seed)
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"{platform.machine()} {platform.system()}"
    )
    print("greeks: price, delta, gamma, vega, theta per option (Black-Scholes)\n")
    header = (
        f"{'options':>8}  {'vectorized':>12}  {'opt/s':>12}  {'scalar loop':>12}  "
        f"{'opt/s':>12}  {'speed-up':>9}  {'max rel diff':>12}"
    )
    print(header)
    print("-" * len(header))
    for n in args.sizes:
        book = make_book(n, rng)
        cols = tuple(book[k] for k in ("S", "K", "T", "r", "sigma", "is_call"))
        lists = tuple(c.tolist() for c in cols)

        def vectorized(cols: tuple[npt.NDArray[np.generic], ...] = cols) -> object:
            return black_scholes(*cols)

        def scalar_loop(lists: tuple[list[float], ...] = lists) -> object:
            return [scalar_greeks(*row) for row in zip(*lists, strict=True)]

        diff = check_agreement(book)
        t_vec = best_time(vectorized, args.seconds)
        t_loop = best_time(scalar_loop, args.seconds)
        print(
            f"{n:>8,}  {t_vec * 1e3:>9.4f} ms  {n / t_vec:>12,.0f}  {t_loop * 1e3:>9.4f} ms  "
            f"{n / t_loop:>12,.0f}  {t_loop / t_vec:>8.1f}x  {diff:>12.1e}"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
