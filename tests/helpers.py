"""Helpers for tests that drive the real entry point (`python -m bot ...`) in a subprocess."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.events import Event

ROOT = Path(__file__).resolve().parents[1]


class Sink:
    """An event sink that keeps every event, for tests that run the engine in-process."""

    def __init__(self) -> None:
        self.events: list[Event] = []

    def emit(self, event: Event) -> None:
        self.events.append(event)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [dict(e.data) for e in self.events if e.name == name]


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEDGEBOT_")}
    env.update(extra)
    return env


def run_bot(
    args: list[str], timeout: float = 120, env: dict[str, str] | None = None
) -> tuple[int, list[dict[str, Any]], str]:
    """Run `python -m bot ARGS` to completion; returns (exit code, JSON log events, stderr)."""
    r = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=env or clean_env(),
        timeout=timeout,
    )
    return r.returncode, parse_events(r.stdout), r.stderr


def parse_events(text: str) -> list[dict[str, Any]]:
    events = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("{"):
            events.append(json.loads(line))
    return events


def named(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e for e in events if e.get("event") == name]


def interrupt_when(argv: list[str], ready: Callable[[], bool]) -> tuple[int, bytes]:
    """Run `argv` in its own process group and press Ctrl-C (SIGINT to the whole group, as a
    terminal does) once `ready()`; returns the exit code and stderr."""
    proc = subprocess.Popen(
        argv,
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not ready():
            assert proc.poll() is None and time.monotonic() < deadline
            time.sleep(0.05)
        os.killpg(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
    return proc.returncode, err
