"""When a backtest path ticks, and which stretch of a recorded file a path replays. Pure.

- A synthetic market ticks every `tick_ms` from the start (`grid`).
- A recorded market ticks at each distinct timestamp the file has for the configured
  underlyings (`file_times`), irregular gaps included; `--tick-ms` with `--data` resamples it
  on a grid instead (the last recorded price at or before each tick).
- A gap longer than the staleness limit (engine.stale_after_s) is not papered over: the daemon's
  heartbeat would look at the feed once it is that old and halt trading as stale until data
  comes again, so the path looks at that moment too (`stale_checks`).
- A sweep over a file cuts it into consecutive windows of `days` (`windows`): path i replays
  window i, each starting with the config's positions; the same windows for every setting.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from bot.backtest.data import DataError, Recorded

DAY_MS = 86_400_000


def grid(start_ms: int, end_ms: int, tick_ms: int) -> range:
    """start + tick, start + 2 tick, ... up to the first tick at or after `end_ms`."""
    return range(start_ms + tick_ms, end_ms + tick_ms, tick_ms)


def file_times(data: Recorded, start_ms: int, end_ms: int) -> tuple[int, ...]:
    """Every distinct timestamp of the recorded underlyings within [start_ms, end_ms]."""
    ts = np.unique(np.concatenate(list(data.ts_ms.values())))
    return tuple(int(t) for t in ts[(ts >= start_ms) & (ts <= end_ms)])


def stale_checks(times: Sequence[int], start_ms: int, limit_ms: int) -> dict[int, int]:
    """{tick: the moment before it when the data goes stale}, for each gap longer than
    `limit_ms` (data older than the limit is stale, README "Money-safety rules")."""
    out: dict[int, int] = {}
    prev = start_ms
    for t in times:
        if t - prev > limit_ms:
            out[t] = prev + limit_ms + 1
        prev = t
    return out


def windows(data: Recorded, days: float, paths: int, where: str) -> list[tuple[int, int]]:
    """(start, end) of `paths` consecutive windows of `days` from the file's start; refuses a
    file too short for them, naming the numbers."""
    first, last = data.span()
    length = int(days * DAY_MS)
    room = (last - first) // length if length > 0 else 0
    if room < paths:
        raise DataError(
            f"{where}: spans {(last - first) / DAY_MS:.4g} days, room for {room} window(s) of "
            f"--days {days:g}, not --paths {paths}; lower --days or --paths"
        )
    return [(first + i * length, first + (i + 1) * length) for i in range(paths)]
