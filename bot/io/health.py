"""Liveness (/healthz) and readiness (/readyz) of the daemon, and its systemd notifications.

Everything is computed on the event loop: a task beats once a second, stamps the time and
re-assesses readiness from the engine's state document; the HTTP server's threads only read the
last stamp and snapshot. A loop that stops turning therefore shows as a stale heartbeat (healthz
503) instead of a health endpoint that hangs with it.

Ready means the daemon can hedge right now: the engine has started and is not stopping, market
data is fresh for every hedged underlying, the venues' account streams and REST calls work, the
trading state allows orders (active or reducing_only) and the journal is writable.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import structlog

from bot.clock import monotonic_s, real_sleep
from bot.events import Event
from bot.io.systemd import Notifier

log = structlog.get_logger("hedgebot.health")

BEAT_S = 1.0
MIN_FREE_BYTES = 16 << 20  # below this a journal write may fail: not ready
MARKET_STREAMS = ("ticker", "book", "positions_poll")  # quiet is stale; others are account data
TRADING_OK = ("active", "reducing_only")
CHECKS = ("engine", "feeds", "venues", "trading", "journal")


def assess(
    state: Mapping[str, Any], *, started: bool, stopping: bool, journal: str | None
) -> dict[str, list[str]]:
    """Problems by check (an empty list is a passing check), from the engine's state document."""
    problems: dict[str, list[str]] = {name: [] for name in CHECKS}
    if stopping:
        problems["engine"].append("stopping")
    elif not started:
        problems["engine"].append("starting: venues connecting, positions reconciling")
    for key, feed in state.get("feeds", {}).items():
        if feed.get("ok"):
            continue
        _, _, stream = str(key).partition(":")
        kind = stream.partition(":")[0]
        where = "feeds" if kind in MARKET_STREAMS else "venues"
        problems[where].append(f"{key}: {feed.get('error')}")
    for u, s in state.get("underlyings", {}).items():
        if s.get("delta_coin") is None:
            problems["feeds"].append(f"{u}: no market data yet")
        halted = s.get("halted")
        if not halted or halted in ("paused", "disabled") or str(halted).startswith("halted:"):
            continue  # the trading check reports pauses and halts once, not per underlying
        where = "venues" if str(halted).startswith(("silent:", "reconciling:")) else "feeds"
        problems[where].append(f"{u}: {halted}")
    trading = state.get("trading_state")
    if trading not in TRADING_OK:
        reason = state.get("trading_state_reason")
        problems["trading"].append(f"trading_state {trading}" + (f" ({reason})" if reason else ""))
    if journal is not None:
        problems["journal"].append(journal)
    return problems


def journal_problem(path: Path) -> str | None:
    """Why the journal could not take the next write, or None."""
    if not path.is_file():
        return f"{path}: missing"
    if not os.access(path, os.W_OK) or not os.access(path.parent, os.W_OK | os.X_OK):
        return f"{path}: not writable (file or its directory)"
    free = shutil.disk_usage(path.parent).free
    if free < MIN_FREE_BYTES:
        return f"{path}: {free} bytes free on its disk, below {MIN_FREE_BYTES}"
    return None


class Health:
    """An event sink (engine started/stopping) plus the beat task; read by the HTTP server."""

    def __init__(
        self,
        state: Callable[[], Mapping[str, Any]],
        journal_path: Path,
        max_lag_s: float,
        notifier: Notifier | None = None,
        monotonic: Callable[[], float] = monotonic_s,
    ) -> None:
        self._state = state
        self._journal_path = journal_path
        self.max_lag_s = max_lag_s
        self.notifier = notifier or Notifier(None)
        self._monotonic = monotonic
        self._started = False
        self._stopping = False
        self._ready_sent = False
        self._stopping_sent = False
        self._last_beat = monotonic()
        self._problems: dict[str, list[str]] = {"engine": ["starting"]}
        self._logged: list[str] | None = None

    def emit(self, event: Event) -> None:
        if event.name == "engine.started":
            self._started = True
        elif event.name == "engine.stopping":
            self.stopping()

    def stopping(self) -> None:
        self._stopping = True
        if not self._stopping_sent:
            self._stopping_sent = True
            self.notifier.stopping()

    def beat(self) -> None:
        self._last_beat = self._monotonic()
        try:
            problems = assess(
                self._state(),
                started=self._started,
                stopping=self._stopping,
                journal=journal_problem(self._journal_path),
            )
        except Exception as e:  # health must never take the daemon down; it reports instead
            problems = {"engine": [f"state unavailable: {e!r}"]}
        self._problems = problems
        flat = [f"{name}: {p}" for name, ps in problems.items() for p in ps]
        if flat != self._logged:  # each change once, not every second
            self._logged = flat
            log.info("health.ready" if not flat else "health.not_ready", problems=flat)
        # systemd's READY=1 means "up": started with data flowing. A halt or a pause is an
        # operator's state, not a failed start, so it does not hold READY back.
        up = not any(problems.get(c) for c in ("engine", "feeds", "venues", "journal"))
        if up and not self._ready_sent:
            self._ready_sent = True
            self.notifier.ready()
            log.info("health.up", systemd=self.notifier.enabled)

    async def run(self) -> None:
        while True:
            self.beat()
            await real_sleep(BEAT_S)

    def loop_age_s(self) -> float:
        return self._monotonic() - self._last_beat

    def healthz(self) -> tuple[int, dict[str, Any]]:
        age = self.loop_age_s()
        live = age <= self.max_lag_s
        body = {
            "status": "ok" if live else "event loop stalled",
            "loop_age_s": round(age, 3),
            "max_loop_lag_s": self.max_lag_s,
            "pid": os.getpid(),
        }
        return (200 if live else 503), body

    def readyz(self) -> tuple[int, dict[str, Any]]:
        code, live = self.healthz()
        problems = dict(self._problems)
        if code != 200:
            problems["engine"] = [*problems.get("engine", []), str(live["status"])]
        checks: dict[str, dict[str, Any]] = {}
        reasons: list[str] = []
        for name in CHECKS:
            found = problems.get(name, [])
            checks[name] = {"ok": not found, "problems": found}
            reasons.extend(f"{name}: {p}" for p in found)
        ready = not reasons
        body = {
            "ready": ready,
            "reasons": reasons,
            "checks": checks,
            "loop_age_s": live["loop_age_s"],
        }
        return (200 if ready else 503), body
