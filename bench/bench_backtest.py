"""Benchmark: backtest ticks/s, trigger corridor off (baseline), on, and with the fast-forward
over quiet ticks (engine.fast_forward), on the standard scenario, config/paper.toml and a book of
1,000 options over 5 underlyings.

The standard scenario is config/backtest-straddle.toml: a short ATM BTC straddle hedged with a
linear perp, one-minute ticks, 60% vol with jumps, 5 bps fee, 2 bps half-spread. All runs go
through the hedger, risk gate, executor and simulated exchange (bot/backtest/path.py); their
events must be identical before any figure is printed. Besides the whole path's ticks/s it
reports the hedger's own share: wall time spent in its entry points (tickers, books, decisions)
per tick, the part this repository's hedging code controls (the rest is the simulated exchange).

    python bench/bench_backtest.py [--days 5] [--seed 1] [--config config/backtest-straddle.toml]
        [--paper-days 2] [--many-days 0.5]
"""

from __future__ import annotations

import argparse
import sys
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

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_latency import config

ROOT = Path(__file__).resolve().parent.parent
_HEDGER_ENTRIES = ("on_ticker", "on_tickers", "on_book", "decide_dirty", "on_orders", "on_fills")


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


def run(
    settings: Settings, spec: PathSpec, corridor: bool, fast_forward: bool, events: Path
) -> dict[str, float]:
    eng = settings.engine.model_copy(update={"corridor": corridor, "fast_forward": fast_forward})
    s = settings.model_copy(update={"engine": eng})
    with HedgerTimer() as timer:
        start = time.perf_counter()
        result = run_path(s, spec, events=events)
        wall = time.perf_counter() - start
    return {
        "ticks": result.ticks,
        "ticks_per_s": result.ticks / wall,
        "hedger_us_per_tick": timer.seconds / result.ticks * 1e6,
        "evaluations": timer.evaluations,
        "orders": result.orders,
    }


MODES = (("corridor off", False, False), ("corridor on", True, False), ("fast-forward", True, True))


def scenario(name: str, settings: Settings, spec: PathSpec, modes: list[str]) -> None:
    """Every mode on the same path; their events must be identical before a figure prints."""
    print(f"{name}: {spec.days:g} days of {spec.tick_ms / 1000:g} s ticks, seed {spec.seed}")
    print(f"{'mode':>13} {'ticks/s':>9} {'hedger us/tick':>15} {'evaluations':>12} {'orders':>7}")
    out: dict[str, dict[str, float]] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for mode, corridor, ff in MODES:
            if mode not in modes:
                continue
            out[mode] = r = run(settings, spec, corridor, ff, Path(tmp) / f"{len(out)}.jsonl")
            print(
                f"{mode:>13} {r['ticks_per_s']:>9,.0f} {r['hedger_us_per_tick']:>15.1f}"
                f" {r['evaluations']:>12,} {r['orders']:>7}"
            )
        files = sorted(Path(tmp).glob("*.jsonl"))
        assert len({f.read_bytes() for f in files}) == 1, "a mode changed a decision or an order"
    base = out[modes[0]]["ticks_per_s"]
    ups = ", ".join(f"{m} {r['ticks_per_s'] / base:.1f}x" for m, r in out.items() if m != modes[0])
    print(f"speed-up over {modes[0]}: {ups}; events identical\n")


def many_options(days: float, seed: int) -> tuple[Settings, PathSpec]:
    """1,000 short options over 5 underlyings (bench_latency.py's book), hedged with a band
    wide enough that most ticks are quiet, one-minute ticks."""
    text = config(1000).replace("stale_after_s = 60", "stale_after_s = 120")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "many.toml"
        path.write_text(text)
        settings = load_settings(path)
    hedge = {
        u: h.model_copy(
            update={"policy": h.policy.model_copy(update={"band": h.policy.band * 100})}
        )
        for u, h in settings.hedge.items()
    }
    settings = settings.model_copy(update={"hedge": hedge})
    return settings, PathSpec(seed=seed, days=days, tick_ms=60_000, start_ms=START_MS)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--config", type=Path, default=ROOT / "config/backtest-straddle.toml")
    ap.add_argument("--days", type=float, default=5.0, help="the standard scenario (0: skip)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--paper-days", type=float, default=2.0, help="config/paper.toml (0: skip)")
    ap.add_argument("--many-days", type=float, default=0.5, help="1,000 options (0: skip)")
    args = ap.parse_args()
    logs.configure("error", "console")
    every = [m for m, _, _ in MODES]
    spec = PathSpec(seed=args.seed, days=args.days, tick_ms=60_000, start_ms=START_MS)
    if args.days > 0:
        scenario(args.config.name, load_settings(args.config), spec, every)
    if args.paper_days > 0:
        paper = PathSpec(seed=args.seed, days=args.paper_days, tick_ms=60_000, start_ms=START_MS)
        scenario("paper.toml", load_settings(ROOT / "config/paper.toml"), paper, every)
    if args.many_days > 0:
        settings, many = many_options(args.many_days, args.seed)
        scenario("1,000 options / 5 underlyings", settings, many, every[1:])


if __name__ == "__main__":
    main()
