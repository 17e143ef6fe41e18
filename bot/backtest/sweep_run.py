"""Runs a sweep's (setting, path) pairs on local processes or a Dask cluster, appending each
finished pair to `results.jsonl` as it comes, so an interrupted sweep keeps its work and a re-run
with the same arguments runs only what is missing.

Each line carries the run's identity (the config file's digest, days, tick, start, market or
data file's digest): a line from
another run in the same folder is ignored, never mixed in.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import FIRST_COMPLETED, Future, wait
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from bot.backtest.path import PathSpec, run_path
from bot.backtest.runner import worker_pool
from bot.backtest.sweep import PathRow
from bot.config import Settings

RESULTS = "results.jsonl"


class SchedulerError(OSError):
    """The Dask scheduler cannot be used (bad answer, refused, timed out)."""


@dataclass(frozen=True, slots=True)
class Work:
    """One (setting, path): `settings` already has the combination applied."""

    key: str
    settings: Settings
    spec: PathSpec


def run_id(config_text: str, spec: PathSpec, market: str) -> str:
    """`market`: the model, or the data file's digest (a changed file is another run)."""
    raw = json.dumps([config_text, spec.days, spec.tick_ms, spec.start_ms, market])
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def digest(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()[:16]


def load_done(out: Path, rid: str) -> dict[tuple[str, int], PathRow]:
    """What earlier runs with this identity finished; a torn last line is ignored."""
    done: dict[tuple[str, int], PathRow] = {}
    path = out / RESULTS
    if not path.exists():
        return done
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            d = json.loads(line)
            if d["run"] != rid:
                continue
            done[(d["key"], int(d["seed"]))] = PathRow(
                float(d["pnl_usd"]), float(d["fees_usd"]), float(d["slippage_usd"]), d["orders"]
            )
        except (ValueError, KeyError, TypeError):
            continue
    return done


def run_one(settings: Settings, spec: PathSpec) -> dict[str, Any]:
    """One path, reduced to what the table needs (small to send back from a worker)."""
    from bot import logs

    logs.configure("error", "console")
    r = run_path(settings, spec, detail=False)
    return {
        "seed": r.seed,
        "pnl_usd": r.pnl_usd,
        "fees_usd": r.fees_usd,
        "slippage_usd": r.slippage_usd,
        "orders": r.orders,
    }


def _record(file: Any, rid: str, key: str, d: dict[str, Any]) -> tuple[tuple[str, int], PathRow]:
    file.write(json.dumps({"run": rid, "key": key, **d}, sort_keys=True) + "\n")
    file.flush()  # an interrupted sweep keeps every finished line
    row = PathRow(d["pnl_usd"], d["fees_usd"], d["slippage_usd"], d["orders"])
    return (key, int(d["seed"])), row


def run_all(
    work: Sequence[Work],
    out: Path,
    rid: str,
    jobs: int,
    scheduler: str | None,
    advance: Callable[[], None],
) -> dict[tuple[str, int], PathRow]:
    """Runs `work` and returns every finished pair's row (those run now)."""
    out.mkdir(parents=True, exist_ok=True)
    got: dict[tuple[str, int], PathRow] = {}
    with (out / RESULTS).open("a", encoding="utf-8") as file:
        results = _dask(work, scheduler) if scheduler else _local(work, jobs)
        for w, d in results:
            k, row = _record(file, rid, w.key, d)
            got[k] = row
            advance()
    return got


def _local(work: Sequence[Work], jobs: int) -> Iterator[tuple[Work, dict[str, Any]]]:
    if jobs <= 1:
        for w in work:
            yield w, run_one(w.settings, w.spec)
        return
    with worker_pool(jobs) as (pool, ctrl_c):
        pending: dict[Future[dict[str, Any]], Work] = {}
        queue = iter(work)
        # A bounded queue: the pool never holds every pair's settings at once.
        for w in queue:
            pending[pool.submit(run_one, w.settings, w.spec)] = w
            if len(pending) >= 2 * jobs:
                break
        while pending:
            finished, _ = wait(pending, return_when=FIRST_COMPLETED)
            for f in finished:
                ctrl_c.check()  # a press a fork swallowed
                yield pending.pop(f), f.result()
                nxt = next(queue, None)
                if nxt is not None:
                    pending[pool.submit(run_one, nxt.settings, nxt.spec)] = nxt
        ctrl_c.check()


def _dask(work: Sequence[Work], scheduler: str) -> Iterator[tuple[Work, dict[str, Any]]]:
    from distributed import Client, as_completed

    try:
        client = Client(scheduler, timeout="15s")  # type: ignore[no-untyped-call]
    except Exception as e:  # whatever the far end did, the sweep cannot use it
        raise SchedulerError(f"{type(e).__name__}: {e}") from e
    with client:
        futures = {client.submit(run_one, w.settings, w.spec, pure=False): w for w in work}
        for f in as_completed(futures):  # type: ignore[no-untyped-call]
            yield futures[f], f.result()


def specs(spec: PathSpec, paths: int) -> list[PathSpec]:
    """The same seeds for every setting (common random numbers): path i has seed + i."""
    return [replace(spec, seed=spec.seed + i) for i in range(paths)]
