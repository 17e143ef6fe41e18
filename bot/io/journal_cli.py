"""`hedgebot journal`: list or export orders, fills, decisions or events for a time range.

    hedgebot journal [--config PATH | --db PATH] {orders,fills,decisions,events}
                     [--since T] [--until T] [--format table|csv|json] [--output FILE]

T is ISO 8601 (a time without a zone is UTC) or epoch milliseconds; the range is [since, until)
of the wall clock (when rows were written), or of the daemon's clock with --clock-time (in a
simulated run that is simulated time; the table then shows it as its own column).
The journal is opened read-only, so this is safe next to a running daemon.
Exit codes: 0 ok, 2 bad arguments, bad config or no journal.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from bot.io.journal_rows import Axis, Row, Table

# rich, the config and the journal (structlog) are imported by the handler, not here: the CLI
# imports this module to declare the arguments, and `hedgebot --help` must stay fast.

FORMATS = ("table", "csv", "json")
# A row whose clock time is this far from its wall time was written by a simulated clock.
SIMULATED_GAP_MS = 60_000
# Columns the table view shows per kind (the csv/json exports carry every column).
_TABLE_COLUMNS: dict[Table, tuple[str, ...]] = {
    "orders": (
        "time",
        "client_id",
        "symbol",
        "side",
        "amount",
        "price",
        "status",
        "filled",
        "average",
        "reason",
    ),
    "fills": (
        "time",
        "account",
        "trade_id",
        "client_id",
        "symbol",
        "side",
        "amount",
        "price",
        "fee",
        "fee_currency",
    ),
    "decisions": ("time", "underlying", "action", "reason", "delta", "target", "band"),
    "events": ("time", "kind", "name", "json"),
}


class UsageError(Exception):
    """A bad argument value, reported with exit code 2."""


def register(subparsers: Any) -> None:
    """Add the `journal` subcommand to a parser's subparsers (from add_subparsers())."""
    p = subparsers.add_parser(
        "journal",
        help="list or export orders, fills, decisions or events from the journal",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    where = p.add_mutually_exclusive_group()
    # SUPPRESS: when not given here, a top-level --config of the main parser (if any) survives.
    where.add_argument(
        "--config",
        "-c",
        type=Path,
        default=argparse.SUPPRESS,
        help="TOML config; the journal is its journal.path",
    )
    where.add_argument("--db", type=Path, default=argparse.SUPPRESS, help="journal SQLite file")
    # The journal's TABLES, spelled out here so that parsing needs no journal import.
    p.add_argument("table", choices=tuple(_TABLE_COLUMNS), help="what to list")
    p.add_argument("--since", help="start, inclusive: ISO 8601 or epoch ms")
    p.add_argument("--until", help="end, exclusive: ISO 8601 or epoch ms")
    p.add_argument(
        "--clock-time",
        action="store_true",
        help="apply --since/--until to the daemon's clock (simulated time in a simulated run) "
        "instead of the wall clock",
    )
    p.add_argument("--format", "-f", choices=FORMATS, default="table", dest="fmt")
    p.add_argument("--output", "-o", type=Path, help="write here instead of stdout")
    p.set_defaults(func=cmd_journal)


def parse_time(text: str | None) -> int | None:
    """ISO 8601 (naive means UTC) or integer epoch ms, to epoch ms."""
    if text is None or text == "":
        return None
    stripped = text.strip()
    if stripped.lstrip("-").isdigit():
        return int(stripped)
    try:
        dt = datetime.fromisoformat(stripped.replace("Z", "+00:00"))
    except ValueError:
        raise UsageError(f"not an ISO 8601 time or epoch milliseconds: {text!r}") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return int(dt.timestamp() * 1000)


def journal_path(args: argparse.Namespace) -> Path:
    db = getattr(args, "db", None)
    if db is not None:
        return Path(db)
    from bot.config import ConfigError, load_settings
    from bot.config_ops import JournalConfig

    config = getattr(args, "config", None)
    if config is None:
        return JournalConfig().path
    try:
        settings = load_settings(config, getattr(args, "secrets", None))
    except ConfigError as e:
        raise UsageError(e.render()) from None
    return settings.journal.path


def cmd_journal(args: argparse.Namespace) -> int:
    from bot.io.journal import Journal, JournalError

    try:
        since, until = parse_time(args.since), parse_time(args.until)
        if since is not None and until is not None and until <= since:
            raise UsageError(f"--until ({args.until}) must be after --since ({args.since})")
        path = journal_path(args)
        if not path.is_file():
            raise UsageError(f"no journal at {path} (give --db or --config)")
        with Journal.open_readonly(path) as journal:
            axis: Axis = "clock" if args.clock_time else "wall"
            rows = journal.rows(cast("Table", args.table), since, until, axis)
    except (UsageError, JournalError) as e:
        print(f"hedgebot journal: {e}", file=sys.stderr)
        return 2
    with _open_output(args.output) as out:
        _write(rows, cast("Table", args.table), args.fmt, out, to_file=args.output is not None)
    return 0


@contextlib.contextmanager
def _open_output(path: Path | None) -> Iterator[IO[str]]:
    if path is None:
        yield sys.stdout
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        yield f


def _write(rows: list[Row], table: Table, fmt: str, out: IO[str], to_file: bool) -> None:
    from bot.io.journal_rows import write_csv, write_json

    if fmt == "csv":
        write_csv(rows, out)
    elif fmt == "json":
        write_json(rows, out)
    else:
        _write_table(rows, table, out, to_file)


def _write_table(rows: list[Row], table: Table, out: IO[str], to_file: bool) -> None:
    from rich.console import Console
    from rich.table import Table as RichTable

    from bot.io.journal_rows import with_time

    # A file gets plain text at a fixed width; a terminal gets rich's colours and its width.
    console = Console(file=out, width=200 if to_file else None, no_color=to_file)
    view = RichTable(title=f"{table} ({len(rows)})", show_lines=False)
    columns = _TABLE_COLUMNS[table]
    timed = with_time(rows)
    if any(_simulated(r) for r in rows):
        # A simulated run: its clock runs ahead of the wall clock; show both.
        columns = (columns[0], "clock_time", *columns[1:])
    for col in columns:
        view.add_column(col, overflow="fold")
    for row in timed:
        view.add_row(*(_cell(row.get(col)) for col in columns))
    console.print(view)


def _simulated(row: Row) -> bool:
    wall = row.get("wall")
    return wall is not None and abs(int(row["ts"]) - int(wall)) > SIMULATED_GAP_MS


def _cell(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.10g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"))
    return str(value)
