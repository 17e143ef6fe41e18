"""`hedgebot record`: argparse only here; the work loads when the command runs."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from bot.cli_checks import negatives_are_values, out_file
from bot.cli_lazy import lazy

_UNITS = {"": 1.0, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0}


def duration_s(text: str) -> float:
    """`90`, `90s`, `30m`, `1h`, `2d` to seconds."""
    m = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if m is None or not float(m.group(1)) > 0:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a duration > 0 (e.g. 90s, 30m, 1h, 2d; a bare number is seconds)"
        )
    return float(m.group(1)) * _UNITS[m.group(2)]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser(
        "record",
        help="record live tickers of the config's instruments for `backtest --data`",
        description="Watches the tickers of the hedge instruments and position lines of every "
        "real-exchange account in the config (public data, nothing is sent) and writes them to "
        "--out (Parquet for .parquet, else CSV) when --duration has passed or on Ctrl-C.",
    )
    p.add_argument("--config", "-c", type=Path, required=True, help="TOML config file")
    p.add_argument("--secrets", type=Path, help="dotenv file with HEDGEBOT_* secrets")
    p.add_argument("--out", type=Path, required=True, help="output file (.parquet or .csv)")
    p.add_argument("--duration", type=duration_s, default=3600.0, help="how long (1h)")
    p.add_argument(
        "--every-ms", type=int, default=1000, help="at most one row per symbol this often (1000)"
    )
    negatives_are_values(p)
    p.set_defaults(func=lazy("bot.io.record_cli:cmd_record"))


def cmd_record(args: argparse.Namespace) -> int:
    import asyncio

    from bot import logs
    from bot.clock import LiveClock
    from bot.config import ConfigError, load_settings
    from bot.io import record
    from bot.venues.base import VenueError

    if args.every_ms < 0:
        print(f"--every-ms: must be >= 0 (got {args.every_ms})", file=sys.stderr)
        return 2
    # before the hour of recording, not after
    problem = out_file(args.out) or record.cannot_write(args.out)
    if problem is not None:
        print(problem, file=sys.stderr)
        return 2
    try:
        settings = load_settings(args.config, args.secrets)
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return 2
    if not record.targets(settings):
        print(
            "record: the config has no hedge instrument or position on a real exchange account",
            file=sys.stderr,
        )
        return 2
    logs.configure(settings.log.level, settings.log.format)
    rows: list[record.Row] = []

    async def main() -> None:
        stop = asyncio.Event()
        record.stop_on_signals(stop)
        await record.record(settings, LiveClock(), args.duration, args.every_ms, stop, rows)

    code = 0
    try:
        asyncio.run(main())
    except (VenueError, ConfigError) as e:
        msg = e.render() if isinstance(e, ConfigError) else str(e)
        print(f"record: {msg}", file=sys.stderr)
        code = 1
    record.write(args.out, rows)  # what was recorded, also after an error
    print(f"record: {len(rows)} rows to {args.out}")
    return code
