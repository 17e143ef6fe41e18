"""Command line: `hedgebot run | check-config | ...`. Exit codes: 0 ok, 2 bad config or usage,
3 the journal is unusable (e.g. in use by another daemon).

Only argparse and the standard library are imported before the arguments are parsed: every
handler imports what it needs (config, logging, MQTT, rich) when it runs, so `--help` is fast.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.config import Settings

# 2026-01-01T00:00:00Z: where a virtual clock starts unless told otherwise.
VIRTUAL_START_MS = 1_767_225_600_000


def _add_config_args(p: argparse.ArgumentParser, required: bool = True) -> None:
    p.add_argument("--config", "-c", type=Path, required=required, help="TOML config file")
    p.add_argument("--secrets", type=Path, help="dotenv file with HEDGEBOT_* secrets")


def cmd_run(args: argparse.Namespace) -> int:
    import asyncio

    from bot import logs
    from bot.config import ConfigError, load_settings
    from bot.io.journal import JournalError
    from bot.venues.base import VenueError

    try:
        settings = load_settings(args.config, args.secrets)
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return 2
    if args.clock == "virtual":
        problem = virtual_problem(settings, args.duration)
        if problem is not None:
            print(problem, file=sys.stderr)
            return 2
    logs.configure(settings.log.level, args.log_format or settings.log.format)
    from bot.daemon import run_daemon

    try:
        if args.clock == "virtual":
            from bot.clock import VirtualClock, run_virtual

            clock = VirtualClock(args.start_ms)
            run_virtual(
                lambda: run_daemon(settings, args.config, args.secrets, args.duration, clock)
            )
        else:
            asyncio.run(run_daemon(settings, args.config, args.secrets, args.duration))
    except ConfigError as e:  # a config that only the venue can judge (e.g. unlisted symbol)
        print(e.render(), file=sys.stderr)
        return 2
    except JournalError as e:  # e.g. a second daemon on the same journal
        print(f"hedgebot run: {e}", file=sys.stderr)
        return 3
    except VenueError as e:  # an exchange unreachable or refusing us at start: retry later
        print(f"hedgebot run: could not start: {type(e).__name__}: {e}", file=sys.stderr)
        return 1
    return 0


def virtual_problem(settings: Settings, duration: float | None) -> str | None:
    """A virtual clock never waits, so it can only drive what needs no network: simulated
    accounts, no MQTT, no metrics endpoint; and it needs an end."""
    real = [n for n, a in settings.accounts.items() if a.exchange != "sim"]
    if real:
        return f"--clock virtual: accounts {real} are real exchanges; only 'sim' runs virtually"
    if settings.mqtt.enabled or settings.metrics.enabled:
        return "--clock virtual: disable [mqtt] and [metrics], which need real time"
    if duration is None:
        return "--clock virtual: give --duration (simulated seconds); it never waits"
    return None


def cmd_check_config(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, load_settings, redacted_dump

    try:
        settings = load_settings(args.path, args.secrets)
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return 2
    print(json.dumps(redacted_dump(settings), indent=2, default=str))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="hedgebot", description="Keeps a crypto portfolio's delta inside a band."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run the hedging daemon")
    _add_config_args(run)
    run.add_argument("--duration", type=float, help="stop after this many seconds (daemon clock)")
    run.add_argument("--log-format", choices=["auto", "json", "console"], default=None)
    run.add_argument(
        "--clock",
        choices=["live", "virtual"],
        default="live",
        help="virtual: simulated accounts only, simulated time as fast as the CPU allows (drills)",
    )
    run.add_argument(
        "--start-ms",
        type=int,
        default=VIRTUAL_START_MS,
        help="with --clock virtual: simulated start, epoch ms (2026-01-01T00:00Z)",
    )
    run.set_defaults(func=cmd_run)

    check = sub.add_parser("check-config", help="validate a config file and print it resolved")
    check.add_argument("path", type=Path)
    check.add_argument("--secrets", type=Path, help="dotenv file with HEDGEBOT_* secrets")
    check.set_defaults(func=cmd_check_config)

    # Each register() declares arguments with argparse only; the handlers load lazily.
    from bot.backtest import cli as backtest_cli
    from bot.execution import halt_cli
    from bot.io import ctl_cli, fleet_cli, journal_cli, record_cli
    from bot.venues import markets_args

    journal_cli.register(sub)
    fleet_cli.register(sub)
    ctl_cli.register(sub)
    halt_cli.register(sub)
    backtest_cli.register(sub)
    record_cli.register(sub)
    markets_args.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    func: Any = args.func
    try:
        return int(func(args))
    except KeyboardInterrupt:  # Ctrl-C where a command has nothing of its own to say
        print(f"hedgebot {args.command}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`hedgebot journal ... | head`): stop quietly, as Unix tools do.
        # Python would print the error again flushing stdout at exit: point it at devnull.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 141
