"""Benchmark: backtest ticks/s on the standard scenario, trigger corridor off (baseline) vs on.

The standard scenario is config/backtest-straddle.toml: a short ATM BTC straddle hedged with a
linear perp, one-minute ticks, 60% vol with jumps, 5 bps fee, 2 bps half-spread. Both runs go
through the hedger, risk gate, executor and simulated exchange (bot/backtest/path.py); their
events must be identical before any figure is printed. Besides the whole path's ticks/s it
reports the hedger's own share: wall time spent in its entry points (tickers, books, decisions)
per tick, the part this repository's hedging code controls (the rest is the simulated exchange).

    python bench/bench_backtest.py [--days 5] [--seed 1] [--config config/backtest-straddle.toml]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot import logs
from bot.backtest.cli import START_MS
from bot.backtest.path import PathSpec, run_path
from bot.config import Settings, load_settings
from bot.hedger.hedger import Hedger

ROOT = Path(__file__).resolve().parent.parent
_HEDGER_ENTRIES = ("on_ticker", "on_book", "decide_dirty", "on_orders", "on_fills")


class HedgerTimer:
    """Adds up wall time inside the hedger's entry points (not re-entrant calls twice)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.evaluations = 0
        self._depth = 0
        self._saved: dict[str, Any] = {}

    def __enter__(self) -> HedgerTimer:
        for name in _HEDGER_ENTRIES:
            self._saved[name] = getattr(Hedger, name)
            setattr(Hedger, name, self._wrap(self._saved[name]))
        self._saved["evaluate"] = Hedger.evaluate
        evaluate = Hedger.evaluate

        def counted(h: Hedger, u: str) -> Any:
            self.evaluations += 1
            return evaluate(h, u)

        Hedger.evaluate = counted  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc: object) -> None:
        for name, fn in self._saved.items():
            setattr(Hedger, name, fn)

    def _wrap(self, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any) -> Any:
            if self._depth:
                return fn(*args)
            self._depth += 1
            start = time.perf_counter()
            try:
                return fn(*args)
            finally:
                self.seconds += time.perf_counter() - start
                self._depth -= 1

        return timed


def run(settings: Settings, spec: PathSpec, corridor: bool, events: Path) -> dict[str, float]:
    eng = settings.engine.model_copy(update={"corridor": corridor})
    s = settings.model_copy(update={"engine": eng})
    with HedgerTimer() as timer:
        start = time.perf_counter()
        result = run_path(s, spec, events=events)
        wall = time.perf_counter() - start
    return {
        "ticks": result.ticks,
        "ticks_per_s": result.ticks / wall,
        "hedger_us_per_tick": timer.seconds / result.ticks * 1e6,
        "hedger_ticks_per_s": result.ticks / timer.seconds,
        "evaluations": timer.evaluations,
        "orders": result.orders,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=ROOT / "config/backtest-straddle.toml")
    ap.add_argument("--days", type=float, default=5.0)
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    logs.configure("error", "console")
    settings = load_settings(args.config)
    spec = PathSpec(seed=args.seed, days=args.days, tick_ms=60_000, start_ms=START_MS)
    with tempfile.TemporaryDirectory() as tmp:
        off = run(settings, spec, False, Path(tmp) / "off.jsonl")
        on = run(settings, spec, True, Path(tmp) / "on.jsonl")
        same = (Path(tmp) / "off.jsonl").read_bytes() == (Path(tmp) / "on.jsonl").read_bytes()
    assert same, "the corridor changed a decision or an order"
    print(f"{args.config.name}: {args.days:g} days of one-minute ticks, seed {args.seed}")
    print(
        f"{'corridor':>9} {'ticks/s':>9} {'hedger us/tick':>15} {'hedger ticks/s':>15}"
        f" {'evaluations':>12} {'orders':>7}"
    )
    for name, r in (("off", off), ("on", on)):
        print(
            f"{name:>9} {r['ticks_per_s']:>9,.0f} {r['hedger_us_per_tick']:>15.1f}"
            f" {r['hedger_ticks_per_s']:>15,.0f} {r['evaluations']:>12,} {r['orders']:>7}"
        )
    print(
        f"speed-up: whole path {on['ticks_per_s'] / off['ticks_per_s']:.2f}x,"
        f" hedger {off['hedger_us_per_tick'] / on['hedger_us_per_tick']:.2f}x;"
        " events identical"
    )


if __name__ == "__main__":
    main()
