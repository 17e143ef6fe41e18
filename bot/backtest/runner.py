"""Runs backtest paths, in this process or spread over processes, with a progress bar.

Path i runs with seed `spec.seed + i`, whatever the number of processes, so a report does not
depend on --jobs.
"""

from __future__ import annotations

import dataclasses
import os
import signal
from collections.abc import Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from bot.backtest.path import PathResult, PathSpec, run_path
from bot.config import Settings
from bot.interrupts import CtrlC

# Progress is drawn every this many ticks of a path run in this process.
_PROGRESS_EVERY = 1_000


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        transient=True,
    )


def quiet_worker() -> None:
    """A pool worker's initializer: Ctrl-C reaches the whole process group, and the parent
    reports it and drops the work; a worker just ends, without a traceback of its own."""
    signal.signal(signal.SIGINT, lambda *_: os._exit(130))


@contextmanager
def worker_pool(jobs: int) -> Iterator[tuple[ProcessPoolExecutor, CtrlC]]:
    """Processes for paths: workers quiet on Ctrl-C, a press the parent remembers (check it
    after each result), and on the way out the paths not started dropped, not run to the end
    first."""
    pool = ProcessPoolExecutor(max_workers=jobs, initializer=quiet_worker)
    try:
        with CtrlC() as ctrl_c:
            yield pool, ctrl_c
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


def _spec(spec: PathSpec, i: int) -> PathSpec:
    return dataclasses.replace(spec, seed=spec.seed + i)


def run_paths(
    settings: Settings, spec: PathSpec, paths: int, jobs: int, events: Path | None = None
) -> list[PathResult]:
    """`events`: a folder for each path's events (events-<seed>.jsonl), or None."""
    with _progress() as progress:
        if jobs <= 1:
            ticks = len(spec.ticks())
            task = progress.add_task("ticks", total=ticks * paths)
            results = []
            for i in range(paths):
                done = {"n": 0}

                def on_tick(n: int, done: dict[str, int] = done) -> None:
                    if n - done["n"] >= _PROGRESS_EVERY:
                        progress.advance(task, n - done["n"])
                        done["n"] = n

                one = _spec(spec, i)
                results.append(run_path(settings, one, on_tick, _events(events, one)))
                progress.advance(task, results[-1].ticks - done["n"])
            return results
        task = progress.add_task("paths", total=paths)
        with worker_pool(jobs) as (pool, ctrl_c):
            specs = [_spec(spec, i) for i in range(paths)]
            futures = [pool.submit(_work, settings, s, _events(events, s)) for s in specs]
            out: list[PathResult] = []
            for f in futures:
                out.append(f.result())
                ctrl_c.check()  # a press a fork swallowed
                progress.advance(task)
            return out


def _events(folder: Path | None, spec: PathSpec) -> Path | None:
    return folder / f"events-{spec.seed}.jsonl" if folder is not None else None


def _work(settings: Settings, spec: PathSpec, events: Path | None) -> Any:
    from bot import logs

    logs.configure("error", "console")
    return run_path(settings, spec, events=events)
