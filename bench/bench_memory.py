"""Benchmark: resident memory growth of a long backtest with orders and fills, after warm-up.

The standard scenario (config/backtest-straddle.toml) on one-second ticks (the straddle stays
alive: 1,000,000 ticks are 11.6 days), once with a tight band so the hedger trades all along
and once, as the baseline in the same run, with a band so wide it never trades. RSS is read from
/proc/self/statm at the end of warm-up (the first `--warmup` share of the ticks) and at the last
tick (inside the run: the path's parts are alive);
the difference between the two runs' growth is what order and fill history costs. With
`--trace`, tracemalloc (much slower) lists the allocation sites that grew most.

    python bench/bench_memory.py [--ticks 1000000] [--warmup 0.1] [--band 0.05] [--trace]
"""

from __future__ import annotations

import argparse
import gc
import os
import time
import tracemalloc
from pathlib import Path

from bot import logs
from bot.backtest.cli import START_MS
from bot.backtest.path import PathSpec, run_path
from bot.config import Settings, load_settings

ROOT = Path(__file__).resolve().parent.parent
TICK_MS = 1_000
PAGE = os.sysconf("SC_PAGE_SIZE")


def rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE / 1e6


def with_band(settings: Settings, band: float) -> Settings:
    hedge = {
        u: h.model_copy(update={"policy": h.policy.model_copy(update={"band": band})})
        for u, h in settings.hedge.items()
    }
    return settings.model_copy(update={"hedge": hedge})


def run(settings: Settings, ticks: int, warmup: float, trace: bool) -> dict[str, float]:
    spec = PathSpec(seed=1, days=ticks * TICK_MS / 86_400_000, tick_ms=TICK_MS, start_ms=START_MS)
    mark = {"rss": 0.0, "end": 0.0}
    snap: list[tracemalloc.Snapshot] = []
    at = max(int(ticks * warmup), 1)

    def on_tick(n: int) -> None:
        # both marks inside the run, the path's parts alive (after it they are freed)
        if not mark["rss"] and n >= at:
            gc.collect()
            mark["rss"] = rss_mb()
            if trace:
                snap.append(tracemalloc.take_snapshot())
        elif not mark["end"] and n >= ticks:
            gc.collect()
            mark["end"] = rss_mb()
            if trace:
                top = tracemalloc.take_snapshot().compare_to(snap[0], "filename")[:8]
                for stat in top:
                    print(f"    {stat}")

    if trace:
        tracemalloc.start()
    start = time.perf_counter()
    result = run_path(settings, spec, on_tick)
    wall = time.perf_counter() - start
    if trace:
        tracemalloc.stop()
    return {
        "ticks": result.ticks,
        "orders": result.orders,
        "fills": result.fills,
        "warm_mb": mark["rss"],
        "growth_mb": mark["end"] - mark["rss"],
        "ticks_per_s": result.ticks / wall,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--ticks", type=int, default=1_000_000)
    ap.add_argument("--warmup", type=float, default=0.1, help="share of the ticks before the mark")
    ap.add_argument("--band", type=float, default=0.05, help="the trading run's band (coin)")
    ap.add_argument("--trace", action="store_true", help="tracemalloc's top growth (slow)")
    args = ap.parse_args()
    logs.configure("error", "console")
    base = load_settings(ROOT / "config/backtest-straddle.toml")
    print(f"{args.ticks:,} one-second ticks, RSS after {args.warmup:.0%} warm-up and at the end")
    print(f"{'run':>12} {'orders':>7} {'fills':>7} {'warm MB':>8} {'growth MB':>10} {'ticks/s':>8}")
    rows = {}
    for name, band in (("no trading", 1e9), ("trading", args.band)):
        rows[name] = r = run(with_band(base, band), args.ticks, args.warmup, args.trace)
        print(
            f"{name:>12} {r['orders']:>7,} {r['fills']:>7,} {r['warm_mb']:>8.1f}"
            f" {r['growth_mb']:>10.1f} {r['ticks_per_s']:>8,.0f}"
        )
    extra = rows["trading"]["growth_mb"] - rows["no trading"]["growth_mb"]
    print(f"order and fill history: {extra:+.1f} MB over the baseline's growth")


if __name__ == "__main__":
    main()
