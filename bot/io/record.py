"""`hedgebot record`: the live tickers of a config's hedge instruments and option lines, written
as a data file `hedgebot backtest --data` replays (columns: timestamp (epoch ms, when received),
symbol, bid, ask, last, mark, iv, index; Parquet for a .parquet name, else CSV).

Public data only, through the same CcxtVenue as the daemon (watch_ticker); no order is ever sent.
It stops after --duration clock seconds or at Ctrl-C / SIGTERM, and writes what it has either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import signal
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import structlog

from bot.clock import Clock
from bot.config import Settings
from bot.core.market import Ticker
from bot.venues.base import VenueError

if TYPE_CHECKING:  # ccxt loads only when the command runs
    from bot.venues.ccxt_venue import CcxtVenue

log = structlog.get_logger(__name__)

COLUMNS = ("timestamp", "symbol", "bid", "ask", "last", "mark", "iv", "index")
Row = tuple[
    int, str, float | None, float | None, float | None, float | None, float | None, float | None
]


@dataclass(frozen=True, slots=True)
class Target:
    account: str
    symbol: str


def targets(settings: Settings) -> list[Target]:
    """The hedge instruments and the position lines with a symbol, on real-exchange accounts."""
    real = {n for n, a in settings.accounts.items() if a.exchange != "sim"}
    found = {Target(a, s) for h in settings.hedge.values() for a, s in h.lines()}
    found |= {Target(p.account, p.symbol) for p in settings.positions if p.symbol}
    return sorted((t for t in found if t.account in real), key=lambda t: (t.account, t.symbol))


def row_of(t: Ticker, received_ms: int) -> Row:
    """Stamped when received: venues repeat a ticker with its old time while nothing changes."""
    return (received_ms, t.symbol, t.bid, t.ask, t.last, t.mark, t.iv, t.index)


async def record(
    settings: Settings,
    clock: Clock,
    duration_s: float,
    every_ms: int,
    stop: asyncio.Event,
    rows: list[Row],
) -> None:
    """Rows into `rows` until `duration_s` passes on `clock` or `stop` is set; at most one row
    per symbol per `every_ms` (the streams can tick many times a second)."""
    from bot.venues.ccxt_venue import CcxtVenue

    wanted = targets(settings)
    venues: dict[str, CcxtVenue] = {}
    tasks: list[asyncio.Task[None]] = []
    try:
        for name in sorted({t.account for t in wanted}):
            acc = settings.accounts[name]
            venue = CcxtVenue(name, acc, required=[t.symbol for t in wanted if t.account == name])
            venues[name] = venue
            await venue.load_instruments()
        for t in wanted:
            tasks.append(asyncio.ensure_future(_watch(venues[t.account], t, rows, clock, every_ms)))
        ends = asyncio.ensure_future(clock.sleep(duration_s))
        stopped = asyncio.ensure_future(stop.wait())
        await asyncio.wait([ends, stopped, *tasks], return_when=asyncio.FIRST_COMPLETED)
        for f in (ends, stopped):
            f.cancel()
        for task in tasks:
            err = task.exception() if task.done() else None
            if err is not None:
                raise err
    finally:
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for venue in venues.values():
            with contextlib.suppress(Exception):
                await venue.close()


async def _watch(venue: CcxtVenue, t: Target, rows: list[Row], clock: Clock, every_ms: int) -> None:
    last_ms: int | None = None
    while True:
        try:
            ticker = await venue.watch_ticker(t.symbol)
        except VenueError as e:  # a dropped stream: log it and watch again, as the daemon does
            log.warning("record.stream_error", account=t.account, symbol=t.symbol, error=str(e))
            await clock.sleep(1.0)
            continue
        now = clock.now_ms()
        if last_ms is None or now - last_ms >= every_ms:
            rows.append(row_of(ticker, now))
            last_ms = now


def is_parquet(path: Path) -> bool:
    return path.suffix.lower() in (".parquet", ".pq")


def cannot_write(path: Path) -> str | None:
    """Why `write` could not write this kind of file here (checked before recording)."""
    if is_parquet(path):
        try:
            import pyarrow  # noqa: F401
        except ImportError:
            return (
                f"--out: {path} is Parquet, which needs pyarrow (pip install 'hedgebot[lab]'); "
                "or name a .csv file"
            )
    return None


def write(path: Path, rows: Sequence[Row]) -> None:
    """CSV, or Parquet when the name ends .parquet (needs pyarrow, the lab extra)."""
    rows = sorted(rows, key=lambda r: (r[0], r[1]))
    path.parent.mkdir(parents=True, exist_ok=True)
    if is_parquet(path):
        import pyarrow as pa
        import pyarrow.parquet as pq

        cols = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
        types = [pa.int64(), pa.string()] + [pa.float64()] * 6
        table = pa.table(
            {c: pa.array(list(v), type=ty) for c, v, ty in zip(COLUMNS, cols, types, strict=True)}
        )
        pq.write_table(table, path)
        return
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(COLUMNS)
        for r in rows:
            w.writerow(["" if x is None else x for x in r])


def stop_on_signals(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
