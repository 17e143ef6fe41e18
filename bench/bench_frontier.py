"""Benchmark: the cost-risk frontier of the fixed band against Whalley-Wilmott, the headline figure.

The standard scenario is config/backtest-straddle.toml: a short ATM BTC straddle (10 calls and 10
puts, a month out) hedged with a linear perp, one-minute ticks, 60% vol with jumps, 5 bps taker
fee, 2 bps half-spread. Every policy setting runs on the same seeded paths (common random
numbers) through the sweep's API (bot.backtest.sweep, bot.backtest.sweep_run: the hedger, risk
gate, executor and simulated exchange on all cores). For each setting it prints the mean hedging
cost (fees + slippage), the hedged P&L standard deviation and 5% CVaR; then, for each
Whalley-Wilmott setting, the fixed band's std at the same mean cost (linear interpolation on
each band family's efficient frontier; "-" outside its cost range) and how much lower WW's is.
Finished paths are kept in --out/results.jsonl: a re-run with the same arguments resumes.

    python bench/bench_frontier.py [--paths 200] [--days 30] [--jobs N | --scheduler ADDR]
                                   [--out DIR]
    python bench/bench_frontier.py --paths 8 --days 3      (a quick look)
"""

from __future__ import annotations

import argparse
import math
import os
from pathlib import Path
from typing import Any

import numpy as np

from bot import logs
from bot.backtest import sweep, sweep_run
from bot.backtest.cli import START_MS, TICK_MS, with_model
from bot.backtest.path import PathSpec
from bot.clock import monotonic_s
from bot.config import load_settings

ROOT = Path(__file__).resolve().parent.parent
POLICY = "hedge.BTC.policy"
# Fixed half-widths (BTC) and WW risk aversions (per USD) spanning the same range of costs on the
# standard scenario. The WW band H = (1.5 lambda S Gamma^2 / ra)^(1/3), with lambda = 7e-4,
# S = 60 000 and the straddle's |Gamma| ~ 7.5e-4 BTC/USD at the start, is 0.07 BTC at ra = 0.1
# and 1.5 BTC at ra = 1e-5 (it moves with gamma). Trading to the edge costs about half of
# trading to the target at the same width, so WW's widths reach below the bands' to match the
# costliest band to target.
BANDS = [round(x, 4) for x in np.geomspace(0.15, 2.0, 10)]
AVERSIONS = [float(f"{x:.3g}") for x in np.geomspace(1e-5, 1e-1, 10)]


def combos() -> dict[str, list[dict[str, Any]]]:
    """Each policy family's settings, as sweep combinations."""
    fams: dict[str, list[dict[str, Any]]] = {}
    for to in ("target", "edge"):
        fams[f"band/{to}"] = [
            {f"{POLICY}.kind": "band", f"{POLICY}.band": b, f"{POLICY}.to": to} for b in BANDS
        ]
    fams["whalley_wilmott"] = [
        {
            f"{POLICY}.kind": "whalley_wilmott",
            f"{POLICY}.risk_aversion": ra,
            f"{POLICY}.band_floor": 0.01,
            f"{POLICY}.band_cap": 20.0,
            f"{POLICY}.band_unit": "coin",
        }
        for ra in AVERSIONS
    ]
    return fams


def setting(combo: dict[str, Any]) -> str:
    if combo[f"{POLICY}.kind"] == "band":
        return f"band={combo[f'{POLICY}.band']:g}"
    return f"ra={combo[f'{POLICY}.risk_aversion']:.3g}"


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--config", type=Path, default=ROOT / "config/backtest-straddle.toml")
    p.add_argument("--paths", type=int, default=200)
    p.add_argument("--days", type=float, default=30.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--out", type=Path, default=Path("frontier-out"))
    p.add_argument("--scheduler", help="a Dask scheduler (tcp://HOST:PORT) instead of --jobs")
    args = p.parse_args()
    logs.configure("error", "console")
    settings = with_model(load_settings(args.config), "jumps")
    fams = combos()
    spec = PathSpec(args.seed, args.days, TICK_MS, START_MS)
    paths = sweep_run.specs(spec, args.paths)
    seeds = [s.seed for s in paths]
    rid = sweep_run.run_id(args.config.read_text() + "\nbench_frontier", spec, "model:jumps")
    done = sweep_run.load_done(args.out, rid)
    work = [
        sweep_run.Work(sweep.key(c), sweep.apply(settings, c, START_MS), s)
        for cs in fams.values()
        for c in cs
        for s in paths
        if (sweep.key(c), s.seed) not in done
    ]
    total = sum(len(cs) for cs in fams.values()) * len(paths)
    print(
        f"frontier: {len(fams)} policy families x {len(BANDS)} settings x {args.paths} paths x "
        f"{args.days:g} days ({total - len(work)} of {total} already in {args.out}), "
        f"{args.jobs} processes"
    )
    started = monotonic_s()
    done |= sweep_run.run_all(work, args.out, rid, args.jobs, args.scheduler, lambda: None)
    wall = monotonic_s() - started
    rows = {f: sweep.table(cs, done, seeds) for f, cs in fams.items()}
    print(f"  {'policy':<16} {'setting':<12} {'cost':>10} {'P&L std':>10} {'5% CVaR':>10}")
    for fam, rs in rows.items():
        for r in rs:
            print(
                f"  {fam:<16} {setting(r['settings']):<12} {r['cost_mean_usd']:>10,.0f} "
                f"{r['pnl_std_usd']:>10,.0f} {r['pnl_cvar_5_usd']:>10,.0f}"
            )
    print("  WW against the fixed band at equal mean cost (std reduction, + is lower):")
    print(f"  {'setting':<12} {'cost':>10} {'WW std':>10} {'to target':>18} {'to edge':>18}")
    for r in rows["whalley_wilmott"]:
        cost, std = r["cost_mean_usd"], r["pnl_std_usd"]
        cells = []
        for fam in ("band/target", "band/edge"):
            ref = sweep.frontier_std_at(rows[fam], cost)
            cells.append(
                "-" if math.isnan(ref) or ref <= 0 else f"{ref:,.0f} ({1 - std / ref:+.0%})"
            )
        print(
            f"  {setting(r['settings']):<12} {cost:>10,.0f} {std:>10,.0f} "
            f"{cells[0]:>18} {cells[1]:>18}"
        )
    print(f"  wall {wall:.1f} s for {len(work)} paths run now")


if __name__ == "__main__":
    main()
