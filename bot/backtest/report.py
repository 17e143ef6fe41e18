"""The backtest report: per-path results and their statistics over paths, as JSON.

`report.json` holds only what the config and seed determine, so the same run gives the same file
byte for byte; how long it took (ticks per second) goes to `timing.json` beside it.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np

from bot.backtest.attribution import PARTS
from bot.backtest.cross_stats import pooled, reduction
from bot.backtest.path import PathResult, PathSpec

CVAR_LEVEL = 0.05


def stats(values: Sequence[float]) -> dict[str, float]:
    """Mean, sample standard deviation and 5% CVaR (mean of the worst 5% of outcomes, at least
    one path) of a P&L over paths."""
    x = np.sort(np.asarray(values, dtype=np.float64))
    if x.size == 0:
        return {"mean": math.nan, "std": math.nan, "cvar_5": math.nan}
    worst = max(1, math.ceil(CVAR_LEVEL * x.size))
    return {
        "mean": float(x.mean()),
        "std": float(x.std(ddof=1)) if x.size > 1 else 0.0,
        "cvar_5": float(x[:worst].mean()),
    }


def path_dict(r: PathResult) -> dict[str, Any]:
    d = asdict(r)
    d.pop("series")  # the picture's data, not a result
    d["share_in_band"] = r.share_in_band
    d["cross"] = {u: reduction([s]) for u, s in sorted(r.cross.items())}
    return d


def build(
    config_name: str, spec: PathSpec, paths: int, results: Sequence[PathResult]
) -> dict[str, Any]:
    def col(name: str) -> list[float]:
        return [float(getattr(r, name)) for r in results]

    return {
        "config": config_name,
        "seed": spec.seed,
        "paths": paths,
        "days": spec.days,
        "tick_ms": spec.tick_ms,
        "start_ms": spec.start_ms,
        "summary": {
            "hedged_pnl_usd": stats(col("pnl_usd")),
            "hedged_pnl_coin": stats(col("pnl_coin")),
            "fees_usd": stats(col("fees_usd")),
            "slippage_usd": stats(col("slippage_usd")),
            "funding_usd": stats(col("funding_usd")),
            "orders": stats(col("orders")),
            "fills": stats(col("fills")),
            "share_in_band": stats(col("share_in_band")),
            "max_abs_delta_coin": max(col("max_abs_delta_coin"), default=0.0),
            "max_abs_drift": max(col("max_abs_drift"), default=0.0),
            "ticks": int(sum(col("ticks"))),
            "stale_halts": int(sum(col("stale_halts"))),
            # mean over paths of each part of the hedged P&L (USD); they add up to its mean
            "attribution_usd": {
                part: float(np.mean([getattr(r.attribution, part) for r in results]))
                if results
                else 0.0
                for part in PARTS
            },
        },
        # each cross hedge's 1 - var(hedged) / var(unhedged) of the per-tick P&L, pooled
        "cross_hedges": pooled(r.cross for r in results),
        # end-of-path 1-day 99% VaR of the whole book, over paths (paths without one left out)
        "end_var_99_usd": _end_var(results),
        "per_path": [path_dict(r) for r in results],
    }


def write(out: Path, report: dict[str, Any], timing: dict[str, float]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    path = out / "report.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    (out / "timing.json").write_text(json.dumps(timing, indent=2, sort_keys=True) + "\n")
    return path


def summary_lines(report: dict[str, Any], timing: dict[str, float]) -> list[str]:
    s = report["summary"]

    def money(name: str) -> str:
        x = s[name]
        return f"mean {x['mean']:,.2f}  std {x['std']:,.2f}  5% CVaR {x['cvar_5']:,.2f}"

    return [
        f"backtest: {report['paths']} path(s) x {report['days']:g} days, "
        f"{_ticks(report['tick_ms'])}, seed {report['seed']}",
        f"  hedged P&L USD   {money('hedged_pnl_usd')}",
        f"  hedged P&L coin  {money('hedged_pnl_coin').replace(',', '')}",
        f"  fees USD         mean {s['fees_usd']['mean']:,.2f}",
        f"  slippage USD     mean {s['slippage_usd']['mean']:,.2f}",
        f"  funding USD      mean {s['funding_usd']['mean']:,.2f} (paid on perps)",
        f"  orders / fills   mean {s['orders']['mean']:.1f} / {s['fills']['mean']:.1f}",
        f"  inside the band  {s['share_in_band']['mean'] * 100:.1f}% of ticks",
        "  P&L attribution  " + "  ".join(f"{k} {v:,.2f}" for k, v in s["attribution_usd"].items()),
        f"  largest |delta|  {s['max_abs_delta_coin']:.4f} coin",
        f"  stale halts      {s['stale_halts']} (data gaps over engine.stale_after_s)",
        *_risk_lines(report),
        *(
            f"  cross hedge {u:<5} variance reduction "
            + (f"{c['variance_reduction']:.3f}" if c["variance_reduction"] is not None else "none")
            + f" over {c['ticks']:,} ticks"
            for u, c in report.get("cross_hedges", {}).items()
        ),
        f"  ticks            {s['ticks']:,} in {timing['wall_s']:.2f} s "
        f"({timing['ticks_per_s']:,.0f} ticks/s)",
    ]


def _ticks(tick_ms: int) -> str:
    """tick_ms 0: a replay at the file's own timestamps (bot/backtest/schedule.py)."""
    return "ticks at the file's timestamps" if tick_ms == 0 else f"ticks every {tick_ms / 1000:g} s"


def _risk_lines(report: dict[str, Any]) -> list[str]:
    """End-of-path VaR and the worst scenario cell of the whole book, per path."""
    out = []
    for p in report["per_path"]:
        total = p.get("risk", {}).get("total")
        if not total:
            continue
        var, cvar, worst = total["var_99_usd"], total["cvar_99_usd"], total["worst"]
        risk = (
            f"VaR {var:,.2f}  CVaR {cvar:,.2f}"
            if var is not None
            else f"VaR none ({total['samples']} samples)"
        )
        cell = (
            f"worst cell {worst['pnl_usd']:,.2f} at spot {worst['spot_pct']:+g}% "
            f"iv {worst['iv_points']:+g}pt"
            if worst
            else "worst cell none"
        )
        out.append(f"  end risk path {p['seed']}  {risk}  {cell}")
    return out


def _end_var(results: Sequence[PathResult]) -> dict[str, float] | None:
    """Stats over paths of the end-of-path book VaR; None when no path has one (too short)."""
    found = [r.risk.get("total", {}).get("var_99_usd") for r in results]
    values = [float(v) for v in found if v is not None]
    return stats(values) if values else None
