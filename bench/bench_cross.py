"""Benchmark and figures of cross hedges (README "Cross hedges").

1. The figures over 200 paths (the vectorized simulation, bot/backtest/cross_sim.py): variance
   reduction against rho^2 and the estimated beta against the true one, for rho 0.8 and 0.95.
2. The cost of a cross hedge in the real backtest, against a baseline in the same run: the same
   two-asset market (tests/backtest_configs/cross_pair.toml) with SOL hedged directly (no
   [hedge.SOL.cross]) versus by beta on the BTC perp; ticks/s of each, and seconds per path of
   the real backtest versus the vectorized one.

    python bench/bench_cross.py [--days 0.5] [--paths 200]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import tomllib
from pathlib import Path

from bot import logs
from bot.backtest.cli import START_MS
from bot.backtest.cross_sim import PairMarket, simulate
from bot.backtest.path import PathSpec, run_path
from bot.config import load_settings
from bot.core.beta import Spec
from tests import tomlw

ROOT = Path(__file__).resolve().parent.parent
PAIR = ROOT / "tests" / "backtest_configs" / "cross_pair.toml"


def figures(paths: int) -> float:
    t0 = time.perf_counter()
    for rho in (0.8, 0.95):
        market = PairMarket(rho=rho, vol_target=0.9, vol_proxy=0.6)
        for spec in (Spec(window=500), Spec(half_life=250)):
            f = simulate(market, spec, min_samples=200, paths=paths, steps=1500, seed=11)
            weights = f"window {spec.window}" if spec.window else f"half_life {spec.half_life:g}"
            print(
                f"rho {rho:.2f} {weights}: "
                f"variance reduction {f.variance_reduction:.4f} (rho^2 {rho * rho:.4f}), "
                f"beta {f.beta_mean:.4f} +- {f.beta_std:.4f} (true {market.true_beta:.4f}), "
                f"corr {f.corr_mean:.4f}"
            )
    return (time.perf_counter() - t0) / (4 * paths)


def backtest(days: float, cross: bool) -> tuple[float, int, dict[str, object]]:
    doc = tomllib.loads(PAIR.read_text())
    # bands of about 12k USD on either hedge, so both trade about as often
    doc["hedge"]["BTC"]["policy"]["band"] = 0.2
    doc["hedge"]["SOL"]["policy"]["band"] = 80.0
    if not cross:
        del doc["hedge"]["SOL"]["cross"]
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "c.toml"
        path.write_text(tomlw.dumps(doc))
        settings = load_settings(path)
    t0 = time.perf_counter()
    r = run_path(settings, PathSpec(1, days, 60_000, START_MS))
    wall = time.perf_counter() - t0
    return wall, r.ticks, {"orders": r.orders, "pnl_usd": round(r.pnl_usd, 2)}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--days", type=float, default=0.5)
    ap.add_argument("--paths", type=int, default=200)
    args = ap.parse_args()
    logs.configure("error", "console")
    per_path = figures(args.paths)
    base_s, ticks, base = backtest(args.days, cross=False)
    cross_s, _, crossed = backtest(args.days, cross=True)
    print(f"direct hedge (baseline): {ticks / base_s:,.0f} ticks/s {base}")
    print(f"cross hedge by beta:     {ticks / cross_s:,.0f} ticks/s {crossed}")
    print(
        f"seconds per path of {args.days:g} days: real backtest {cross_s:.2f}, "
        f"vectorized {per_path * args.days / (1500 / 1440):.4f}"
    )


if __name__ == "__main__":
    main()
