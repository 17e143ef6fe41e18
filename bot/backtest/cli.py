"""`hedgebot backtest`: the hedger on the simulated exchange and a virtual clock, over seeded
paths, with a progress bar, a printed summary and a JSON report."""

from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli_checks import negatives_are_values, out_folder
from bot.cli_lazy import lazy

if TYPE_CHECKING:
    from bot.backtest.data import Recorded
    from bot.backtest.path import PathSpec
    from bot.config import Settings

# 2026-01-01T00:00:00Z: a fixed start, so a run does not depend on the day it is run.
START_MS = 1_767_225_600_000
TICK_MS = 60_000  # a synthetic market's tick unless --tick-ms
# Beyond these a command line is a typo, not a backtest: it would run for days or overflow.
MAX_DAYS = 3_650.0
MAX_TICKS = 1_000_000_000  # per path
MAX_PATHS = 100_000


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "backtest",
        help="run the hedger on simulated markets, as fast as the CPU allows",
        description="Runs the same hedger, risk gate, executor and simulated exchange as the "
        "daemon on a virtual clock, over --paths seeded paths, and writes report.json (the same "
        "config and seed give the same file), timing.json and report.png (with the lab extra) to "
        "--out.",
    )
    p.add_argument("--config", "-c", type=Path, required=True, help="TOML config file")
    p.add_argument("--secrets", type=Path, help="dotenv file with HEDGEBOT_* secrets")
    p.add_argument(
        "--days", type=float, default=None, help="days per path (30; with --data: the file's span)"
    )
    market_arguments(p)
    p.add_argument("--seed", type=int, default=None, help="first path's seed (config sim.seed)")
    p.add_argument("--paths", type=int, default=1, help="independent seeded paths (1)")
    p.add_argument("--jobs", type=int, default=None, help="processes (one per core)")
    p.add_argument("--out", type=Path, default=Path("backtest-out"), help="report folder")
    p.add_argument(
        "--events", action="store_true", help="also write every event to events-<seed>.jsonl"
    )
    negatives_are_values(p)
    p.set_defaults(func=lazy("bot.backtest.cli:cmd_backtest"))
    from bot.backtest import sweep_cli

    sweep_cli.register(sub)  # the lab's sweep sits beside the backtest it repeats


def market_arguments(p: argparse.ArgumentParser) -> None:
    """The market arguments backtest and sweep share (checked by `path_usage`)."""
    p.add_argument(
        "--market",
        choices=("gbm", "jumps", "heston", "regime"),
        help="price model for every underlying (default: each sim.underlyings.<U>.model)",
    )
    p.add_argument(
        "--data",
        type=Path,
        help="replay recorded prices from this CSV or Parquet file instead of a synthetic path",
    )
    p.add_argument(
        "--data-symbol",
        action="append",
        default=[],
        metavar="U=SYMBOL",
        help="with --data: the file's symbol whose price is underlying U's index (repeatable; "
        "default: the symbol's prefix, BTC-PERPETUAL is BTC)",
    )
    p.add_argument(
        "--tick-ms",
        type=int,
        default=None,
        help=f"ms between ticks ({TICK_MS}); with --data: resample the file on this grid "
        "(default: tick at the file's own timestamps)",
    )


def path_usage(args: argparse.Namespace, default_days: float = 30.0) -> str | None:
    """What is wrong with the path and market arguments backtest and sweep share, or None.
    `default_days`: a synthetic path's length when --days is not given."""
    if args.days is not None and not (math.isfinite(args.days) and args.days > 0):
        return f"--days: must be a finite number > 0 (got {args.days})"
    if args.days is not None and args.days > MAX_DAYS:
        return f"--days: must be <= {MAX_DAYS:g} (got {args.days:g})"
    if args.paths < 1:
        return f"--paths: must be >= 1 (got {args.paths})"
    if args.paths > MAX_PATHS:
        return f"--paths: must be <= {MAX_PATHS} (got {args.paths})"
    if args.seed is not None and args.seed < 0:
        return f"--seed: must be >= 0 (got {args.seed})"
    if args.tick_ms is not None and args.tick_ms < 1:
        return f"--tick-ms: must be >= 1 (got {args.tick_ms})"
    if args.jobs is not None and args.jobs < 1:
        return f"--jobs: must be >= 1 (got {args.jobs})"
    if args.jobs is not None and args.jobs > (most := 4 * (os.cpu_count() or 1)):
        # Every worker is forked at once: more than the cores only slows, thousands exhaust.
        return f"--jobs: must be <= {most}, 4 x this machine's cores (got {args.jobs})"
    if args.data is not None and args.market is not None:
        return "--market and --data: pick one (--data replays a recorded market)"
    if args.data_symbol and args.data is None:
        return "--data-symbol: only with --data"
    if args.data is None:
        return _synthetic_usage(args.days or default_days, args.tick_ms or TICK_MS)
    return None


def _synthetic_usage(days: float, tick_ms: int) -> str | None:
    span_ms = days * 86_400_000
    if tick_ms > span_ms:
        return (
            f"--days: a path must span at least one tick: {days:g} days is {span_ms:.0f} ms, "
            f"the tick {tick_ms} ms (--tick-ms)"
        )
    if span_ms / tick_ms > MAX_TICKS:
        return (
            f"--tick-ms: --days {days:g} of {tick_ms} ms ticks is {span_ms / tick_ms:.3g} ticks a "
            f"path; must be <= {MAX_TICKS:.0e} (got {tick_ms})"
        )
    return None


def simulated_settings(args: argparse.Namespace, what: str) -> Settings | None:
    """The config, if it loads and every account is simulated; else None, having said why."""
    from bot.config import ConfigError, load_settings

    try:
        settings = load_settings(args.config, args.secrets)
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return None
    real = [f"{n} ({a.exchange})" for n, a in settings.accounts.items() if a.exchange != "sim"]
    if real:
        print(
            f"accounts: {what} runs on the simulated exchange; {', '.join(real)} "
            "are real exchanges",
            file=sys.stderr,
        )
        return None
    if not settings.hedge:  # a path is measured against its first hedged underlying
        print(f"hedge: {what} needs at least one [hedge.<U>] section (got none)", file=sys.stderr)
        return None
    if args.data is not None:
        settings = replayed_only(settings)
    return settings


def replayed_only(settings: Settings) -> Settings:
    """A replay needs prices for the underlyings it holds or hedges only: the others listed in
    sim.underlyings are left out (with a note), so a file of one coin replays a config that
    lists more. The recorded prices carry their own correlation: sim.correlation goes with
    them when it names one left out."""
    used = set(settings.hedge) | {p.underlying for p in settings.positions}
    listed = settings.sim.underlyings
    unused = sorted(set(listed) - used)
    if not unused or not used <= set(listed):
        return settings  # nothing to leave out, or a config error the replay reports
    print(f"--data: {', '.join(unused)} (neither held nor hedged) left out", file=sys.stderr)
    corr = settings.sim.correlation
    if corr is not None and not set(corr.underlyings) <= used:
        corr = None
    und = {u: x for u, x in listed.items() if u in used}
    sim = settings.sim.model_copy(update={"underlyings": und, "correlation": corr})
    return settings.model_copy(update={"sim": sim})


def with_model(settings: Settings, model: str) -> Settings:
    """`--market`: every underlying on `model`, its other parameters as configured."""
    und = {u: x.model_copy(update={"model": model}) for u, x in settings.sim.underlyings.items()}
    return settings.model_copy(update={"sim": settings.sim.model_copy(update={"underlyings": und})})


def recorded(args: argparse.Namespace, settings: Settings) -> Recorded:
    """`--data`'s file for the configured underlyings (raises DataError)."""
    from bot.backtest import data

    mapping = data.parse_mapping(args.data_symbol)
    unknown = sorted(set(mapping.values()) - set(settings.sim.underlyings))
    if unknown:
        raise data.DataError(
            f"--data-symbol: {unknown[0]} must be one of the config's underlyings "
            f"{sorted(settings.sim.underlyings)} (got {args.data_symbol})"
        )
    rec = data.load(args.data, sorted(settings.sim.underlyings), mapping)
    for note in data.notes(rec):  # a tolerance is never silent
        print(f"--data: {args.data}: {note}", file=sys.stderr)
    return rec


def replay_spec(
    args: argparse.Namespace, rec: Recorded, seed: int, start_ms: int, end_ms: int
) -> PathSpec:
    """A path replaying [start_ms, end_ms] of the file: at its own timestamps, or every
    --tick-ms when given (resampled: the last price at or before each tick)."""
    from bot.backtest import schedule
    from bot.backtest.data import DataError
    from bot.backtest.path import PathSpec
    from bot.backtest.schedule import DAY_MS

    days = (end_ms - start_ms) / DAY_MS
    if args.tick_ms is None:
        times = schedule.file_times(rec, start_ms, end_ms)
        if len(times) < 2:
            raise DataError(f"{args.data}: fewer than two timestamps to replay")
        return PathSpec(seed, days, 0, start_ms, data=rec, times=times)
    if end_ms - start_ms < args.tick_ms:
        raise DataError(
            f"{args.data}: spans {end_ms - start_ms} ms, less than one tick (--tick-ms)"
        )
    return PathSpec(seed, days, args.tick_ms, start_ms, data=rec)


def _spec(args: argparse.Namespace, settings: Settings, seed: int) -> PathSpec:
    from bot.backtest.path import PathSpec
    from bot.backtest.schedule import DAY_MS

    if args.data is None:
        days = 30.0 if args.days is None else args.days
        return PathSpec(seed, days, args.tick_ms or TICK_MS, START_MS)
    rec = recorded(args, settings)
    first, last = rec.span()
    if args.days is not None:
        last = min(last, first + int(args.days * DAY_MS))
    return replay_spec(args, rec, seed, first, last)


def cmd_backtest(args: argparse.Namespace) -> int:
    from bot.backtest.data import DataError
    from bot.backtest.runner import run_paths
    from bot.clock import monotonic_s

    problem = path_usage(args)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    settings = simulated_settings(args, "a backtest")
    if settings is None:
        return 2
    from bot import logs

    logs.configure("error", "console")  # the progress bar and summary speak; the hedger is quiet
    from bot.backtest import report

    if args.market is not None:
        settings = with_model(settings, args.market)
    seed = settings.sim.seed if args.seed is None else args.seed
    try:
        spec = _spec(args, settings, seed)
    except DataError as e:
        print(f"--data: {e}", file=sys.stderr)
        return 2
    if (problem := out_folder(args.out)) is not None:
        print(problem, file=sys.stderr)
        return 2
    jobs = args.jobs or min(args.paths, os.cpu_count() or 1)
    started = monotonic_s()
    try:
        results = run_paths(settings, spec, args.paths, jobs, args.out if args.events else None)
    except KeyboardInterrupt:
        # Paths are not kept (a backtest does not resume): say so, as an older report may be there.
        print(f"backtest: interrupted; no report written to {args.out}", file=sys.stderr)
        return 130
    wall = monotonic_s() - started
    ticks = sum(r.ticks for r in results)
    timing = {"wall_s": wall, "ticks": ticks, "ticks_per_s": ticks / wall if wall > 0 else 0.0}
    doc = report.build(args.config.name, spec, args.paths, results)
    doc["market"] = {"data": str(args.data)} if args.data else {"model": args.market or "config"}
    path = report.write(args.out, doc, timing)
    for line in report.summary_lines(doc, timing):
        print(line)
    print(f"  report           {path}")
    from bot.backtest import plots

    why = plots.missing()
    if why is None:
        png = plots.backtest_png(args.out / "report.png", results, f"backtest: {args.config.name}")
        print(f"  picture          {png}")
    else:
        print(f"  picture          none: {why}")
    return 0
