"""Readiness rules, liveness bound, the HTTP routing on the metrics port, sd_notify datagrams and
the journal lock, in-process with real sockets and files."""

from __future__ import annotations

import json
import os
import socket
import tempfile
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.events import Event
from bot.io.health import Health, assess, journal_problem
from bot.io.journal import Journal, JournalError
from bot.io.journal_lock import JournalInUse, JournalLock, lock_path
from bot.io.metrics import Metrics, serve
from bot.io.systemd import Notifier
from tests.test_mqtt_broker import free_port


def state(**over: Any) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "trading_state": "active",
        "trading_state_reason": None,
        "feeds": {
            "sim:book:BTC/USDT:USDT": {"ok": True, "age_ms": 10, "error": None},
            "sim:ticker:BTC/USDT:USDT": {"ok": True, "age_ms": 10, "error": None},
            "sim:orders": {"ok": True, "age_ms": 90_000, "error": None},
        },
        "underlyings": {"BTC": {"delta_coin": 0.1, "halted": None}},
    }
    doc.update(over)
    return doc


def test_assess_ready_state_has_no_problems() -> None:
    problems = assess(state(), started=True, stopping=False, journal=None)
    assert problems == {"engine": [], "feeds": [], "venues": [], "trading": [], "journal": []}


def test_assess_sorts_problems_by_check() -> None:
    feeds = {
        "sim:ticker:BTC/USDT:USDT": {"ok": False, "age_ms": 20_000, "error": "timeout"},
        "sim:positions": {"ok": False, "age_ms": 1, "error": "VenueTransient('reset')"},
        "sim:rest": {"ok": True, "age_ms": 1, "error": None},
    }
    unders = {
        "BTC": {"delta_coin": 0.1, "halted": "stale:sim:ticker:BTC/USDT:USDT"},
        "ETH": {"delta_coin": None, "halted": "reconciling:sim"},
        "SOL": {"delta_coin": 1.0, "halted": "halted:kill_file"},
    }
    doc = state(
        feeds=feeds, underlyings=unders, trading_state="halted", trading_state_reason="kill_file"
    )
    p = assess(doc, started=True, stopping=False, journal="j: not writable")
    assert p["feeds"] == [
        "sim:ticker:BTC/USDT:USDT: timeout",
        "BTC: stale:sim:ticker:BTC/USDT:USDT",
        "ETH: no market data yet",
    ]
    assert p["venues"] == ["sim:positions: VenueTransient('reset')", "ETH: reconciling:sim"]
    assert p["trading"] == ["trading_state halted (kill_file)"]  # once, not per underlying
    assert p["journal"] == ["j: not writable"] and p["engine"] == []


def test_assess_engine_lifecycle_and_trading_states() -> None:
    assert assess(state(), started=False, stopping=False, journal=None)["engine"][0].startswith(
        "starting"
    )
    assert assess(state(), started=True, stopping=True, journal=None)["engine"] == ["stopping"]
    ok = assess(state(trading_state="reducing_only"), started=True, stopping=False, journal=None)
    assert ok["trading"] == []  # reducing_only still hedges toward flat
    paused = assess(state(trading_state="paused"), started=True, stopping=False, journal=None)
    assert paused["trading"] == ["trading_state paused"]


def test_journal_problem(tmp_path: Path) -> None:
    path = tmp_path / "j.sqlite"
    assert journal_problem(path) == f"{path}: missing"
    Journal(path).close()
    assert journal_problem(path) is None


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


class Recorder:
    """A unix datagram socket standing in for systemd's notify socket."""

    def __init__(self) -> None:
        self.dir = tempfile.mkdtemp(prefix="hb-")  # short: sun_path holds 107 bytes
        self.path = os.path.join(self.dir, "notify")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.05)

    def received(self) -> list[str]:
        out = []
        while True:
            try:
                out.append(self.sock.recv(4096).decode())
            except TimeoutError:
                return out

    def close(self) -> None:
        self.sock.close()
        os.unlink(self.path)
        os.rmdir(self.dir)


@pytest.fixture
def recorder() -> Iterator[Recorder]:
    r = Recorder()
    try:
        yield r
    finally:
        r.close()


def test_health_liveness_bound_readiness_and_notifications(
    tmp_path: Path, recorder: Recorder
) -> None:
    journal = tmp_path / "j.sqlite"
    Journal(journal).close()
    doc = state()
    clock = Clock()
    h = Health(lambda: doc, journal, 5.0, Notifier(recorder.path), monotonic=clock)
    h.beat()
    assert h.readyz()[0] == 503 and h.readyz()[1]["checks"]["engine"]["ok"] is False
    assert recorder.received() == []  # not started: no READY
    h.emit(Event("state", "engine.started", 0))
    h.beat()
    assert h.readyz()[0] == 200 and h.healthz()[0] == 200
    assert recorder.received() == ["READY=1\nSTATUS=hedging"]
    h.beat()
    assert recorder.received() == []  # READY once
    clock.t += 5.5  # the loop stopped beating
    code, body = h.healthz()
    assert code == 503 and body["status"] == "event loop stalled" and body["loop_age_s"] == 5.5
    code, body = h.readyz()
    assert code == 503 and "engine: event loop stalled" in body["reasons"]
    h.beat()
    assert h.healthz()[0] == 200
    h.emit(Event("state", "engine.stopping", 0))
    h.stopping()  # the daemon's finally says it again: one datagram
    assert [m.splitlines()[0] for m in recorder.received()] == ["STOPPING=1"]
    h.beat()
    assert h.readyz()[1]["checks"]["engine"]["problems"] == ["stopping"]


def test_a_halt_does_not_hold_back_ready_but_a_dead_feed_does(
    tmp_path: Path, recorder: Recorder
) -> None:
    journal = tmp_path / "j.sqlite"
    Journal(journal).close()
    doc = state(underlyings={"BTC": {"delta_coin": None, "halted": "no_market_data"}})
    h = Health(lambda: doc, journal, 5.0, Notifier(recorder.path))
    h.emit(Event("state", "engine.started", 0))
    h.beat()
    assert recorder.received() == []
    doc.update(state(trading_state="halted", trading_state_reason="kill_file"))
    h.beat()
    assert recorder.received() == ["READY=1\nSTATUS=hedging"]
    assert h.readyz()[1]["reasons"] == ["trading: trading_state halted (kill_file)"]


def test_a_failing_state_document_reports_instead_of_raising(tmp_path: Path) -> None:
    def broken() -> dict[str, Any]:
        raise RuntimeError("boom")

    h = Health(broken, tmp_path / "j.sqlite", 5.0)
    h.beat()
    code, body = h.readyz()
    assert code == 503 and body["reasons"] == ["engine: state unavailable: RuntimeError('boom')"]


def test_metrics_port_routes_health_and_metrics(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    Journal(journal).close()
    h = Health(lambda: state(), journal, 5.0)
    h.emit(Event("state", "engine.started", 0))
    h.beat()
    port = free_port()
    server = serve(Metrics("unit"), "127.0.0.1", port, h)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5) as r:
            assert r.status == 200 and r.headers["Content-Type"] == "application/json"
            assert json.loads(r.read())["ready"] is True
        h.emit(Event("state", "engine.stopping", 0))
        h.beat()
        with pytest.raises(urllib.error.HTTPError) as e:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/readyz", timeout=5)
        assert e.value.code == 503 and json.loads(e.value.read())["reasons"] == ["engine: stopping"]
        for path in ("/metrics", "/"):
            with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
                assert 'hedgebot_info{bot_id="unit"} 1.0' in r.read().decode()
    finally:
        server.shutdown()
        server.server_close()


# --- sd_notify -----------------------------------------------------------------------------


def test_notifier_from_env() -> None:
    n = Notifier.from_env({})
    assert not n.enabled and n.watchdog_interval_s() is None and n.ready() is False
    n = Notifier.from_env({"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000"})
    assert n.enabled and n.watchdog_interval_s() == 15.0
    other = {"NOTIFY_SOCKET": "/run/x", "WATCHDOG_USEC": "30000000", "WATCHDOG_PID": "1"}
    assert Notifier.from_env(other).watchdog_interval_s() is None  # meant for another process
    mine = {**other, "WATCHDOG_PID": str(os.getpid())}
    assert Notifier.from_env(mine).watchdog_interval_s() == 15.0
    assert Notifier.from_env({"WATCHDOG_USEC": "soon"}).watchdog_usec is None


def test_notify_to_an_abstract_socket() -> None:
    name = f"hb-unit-{os.getpid()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as s:
        s.bind("\0" + name)
        s.settimeout(2)
        assert Notifier(f"@{name}").watchdog() is True
        assert s.recv(100) == b"WATCHDOG=1"


def test_notify_to_a_missing_socket_is_reported_not_raised(tmp_path: Path) -> None:
    assert Notifier(str(tmp_path / "gone")).ready() is False


# --- journal lock --------------------------------------------------------------------------


def test_journal_lock_refuses_a_second_holder_until_released(tmp_path: Path) -> None:
    journal = tmp_path / "state" / "j.sqlite"
    first = JournalLock.acquire(journal, "one")
    assert lock_path(journal).read_text() == f"pid={os.getpid()} bot_id=one\n"
    with pytest.raises(JournalInUse) as e:
        JournalLock.acquire(journal, "two")
    assert isinstance(e.value, JournalError)
    assert str(e.value).startswith(
        f"journal.path {str(journal)!r} is in use by another hedgebot daemon "
        f"(pid={os.getpid()} bot_id=one)"
    )
    first.release()
    first.release()  # idempotent
    second = JournalLock.acquire(journal, "two")
    assert second.held and lock_path(journal).read_text() == f"pid={os.getpid()} bot_id=two\n"
    second.release()


def test_a_dropped_lock_is_released(tmp_path: Path) -> None:
    journal = tmp_path / "j.sqlite"
    lock = JournalLock.acquire(journal, "one")
    del lock  # a daemon that failed before its finally: nothing holds the lock any more
    JournalLock.acquire(journal, "two").release()
