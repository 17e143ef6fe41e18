"""Execution end to end: `python -m bot run` in a subprocess on the simulated exchange.

Slippage guards on a thin book, the kill switch CLI, SIGTERM/SIGINT shutdown, and crash safety:
SIGKILL while orders are in flight on a persisted exchange, restart, then every intent has
exactly one order at the venue and every fill is booked exactly once.
"""

from __future__ import annotations

import json
import queue
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, clean_env, named, parse_events, run_bot

pytestmark = pytest.mark.slow

BASE = """
bot_id = "exec"
[journal]
path = "{journal}"
[engine]
hedge_view = "usd"
stale_after_s = 60
[execution]
max_slippage_bps = {slippage}
on_slippage = "{on_slippage}"
mode = "{mode}"
order_timeout_s = {order_timeout}
maker_reprices = 2
maker_reprice_s = {maker_reprice}
maker_timeout_s = 600
shutdown_timeout_s = 20
[risk]
max_order_notional_usd = 5_000_000
max_orders_per_minute = 120
halt_file = "{halt}"
[sim]
seed = {seed}
speed = {speed}
tick_ms = 1000
latency_ms = {latency}
partial_fill_rate = {partial}
level_notional_usd = {level}
state_file = "{state}"
[sim.underlyings.BTC]
price = 60_000.0
vol = 1.0
jump_intensity = 100.0
jump_std = 0.01
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "linear"
option_type = "call"
strike = 60_000
expiry_days = 2
qty = -30
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
unit = "coin"
policy = {{ kind = "band", band = 0.4 }}
"""


def write_config(tmp_path: Path, name: str = "exec.toml", **over: Any) -> Path:
    values: dict[str, Any] = {
        "journal": tmp_path / "journal.sqlite",
        "state": tmp_path / "sim.json",
        "halt": tmp_path / "HALT",
        "slippage": 15,
        "on_slippage": "shrink",
        "mode": "taker",
        "order_timeout": 5,
        "maker_reprice": 2,
        "seed": 5,
        "speed": 100.0,
        "latency": 100,
        "partial": 0.0,
        "level": 250_000.0,
    }
    values.update(over)
    cfg = tmp_path / name
    cfg.write_text(BASE.format(**values))
    return cfg


class Daemon:
    """`python -m bot run` in the background, its JSON log lines collected as they come."""

    def __init__(self, cfg: Path, duration: float | None = None) -> None:
        args = [sys.executable, "-m", "bot", "run", "--config", str(cfg), "--log-format", "json"]
        if duration is not None:
            args += ["--duration", str(duration)]
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.lines: queue.Queue[dict[str, Any]] = queue.Queue()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            for e in parse_events(line):
                self.events.append(e)
                self.lines.put(e)

    def wait_for(self, pred: Any, timeout: float = 60.0) -> dict[str, Any]:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            try:
                e = self.lines.get(timeout=0.1)
            except queue.Empty:
                assert self.proc.poll() is None, self.stderr()
                continue
            if pred(e):
                return e
        raise AssertionError("timed out waiting for a log event")

    def stderr(self) -> str:
        return self.proc.stderr.read() if self.proc.stderr and self.proc.poll() is not None else ""

    def finish(self, timeout: float = 60.0) -> int:
        code = self.proc.wait(timeout=timeout)
        self._reader.join(timeout=5)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


# ---- slippage guard on a thin book ------------------------------------------------------------


def test_thin_book_shrinks_orders_to_the_slippage_cap(tmp_path: Path) -> None:
    # ~0.33 BTC a level, levels 1 bp apart, spread 2 bp: a 3 bp cap fits about 1.3 BTC.
    cfg = write_config(tmp_path, slippage=3, level=20_000.0)
    code, events, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "300", "--log-format", "json"], timeout=120
    )
    assert code == 0, stderr
    shrunk = named(events, "order.shrunk")
    assert shrunk, "the first hedge (~15 BTC) cannot fit a thin book"
    sent = {e["client_id"]: e for e in named(events, "order.sent")}
    for s in shrunk:
        assert s["amount"] < s["requested"]
        assert s["slippage_bps"] <= 3 + 1e-9
        assert sent[s["client_id"]]["amount"] == s["amount"]
    for o in sent.values():
        assert o["expected_slippage_usd"] <= o["expected_notional_usd"] * 3 / 1e4 + 1e-6


def test_thin_book_refuses_when_configured(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, slippage=3, level=20_000.0, on_slippage="refuse")
    code, events, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "120", "--log-format", "json"], timeout=120
    )
    assert code == 0, stderr
    refused = [e for e in named(events, "order.refused") if e["rule"] == "max_slippage"]
    assert refused
    for r in refused:
        assert r["slippage_bps"] > r["max_slippage_bps"] == 3
        assert r["fits"] < r["requested"]
    assert not named(events, "order.sent")  # every hedge was too big for the book


# ---- kill switch -------------------------------------------------------------------------------


def test_halt_cli_creates_and_clears_the_halt_file(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    halt = tmp_path / "HALT"
    r = subprocess.run(
        [sys.executable, "-m", "bot", "halt", "--config", str(cfg), "--reason", "drill"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    assert halt.exists() and json.loads(halt.read_text())["reason"] == "drill"
    assert "halted" in r.stdout and str(halt) in r.stdout

    # A daemon started while halted sends nothing.
    code, events, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "60", "--log-format", "json"], timeout=120
    )
    assert code == 0, stderr
    assert not named(events, "order.sent")
    assert any(e["state"] == "halted" for e in named(events, "trading.state"))

    r = subprocess.run(
        [sys.executable, "-m", "bot", "halt", "--config", str(cfg), "--clear"],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and not halt.exists() and "cleared" in r.stdout


def test_halt_cli_without_halt_file_exits_2(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    text = "\n".join(x for x in cfg.read_text().splitlines() if not x.startswith("halt_file"))
    cfg.write_text(text)
    r = subprocess.run(
        [sys.executable, "-m", "bot", "halt", "--config", str(cfg)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 2
    assert "halt_file is not set" in r.stderr


# ---- shutdown ----------------------------------------------------------------------------------


def sim_orders(state: Path) -> list[dict[str, Any]]:
    return list(json.loads(state.read_text())["orders"])


def test_sigterm_cancels_open_orders_and_exits_0(tmp_path: Path) -> None:
    # maker_first rests post-only orders for a long time: they are open when SIGTERM comes.
    cfg = write_config(tmp_path, mode="maker_first", maker_reprice=600, speed=20.0)
    d = Daemon(cfg)
    try:
        d.wait_for(lambda e: e.get("event") == "order.status" and e.get("status") == "open")
        d.proc.send_signal(signal.SIGTERM)
        code = d.finish(timeout=60)
    finally:
        d.kill()
    assert code == 0
    summary = named(d.events, "daemon.summary")
    assert len(summary) == 1 and summary[0]["open_orders_left"] == 0
    orders = sim_orders(tmp_path / "sim.json")
    assert orders and not [o for o in orders if o["status"] in ("open", "partially_filled")]
    assert any(o["status"] == "cancelled" for o in orders)


def test_second_sigint_exits_at_once(tmp_path: Path) -> None:
    # 5 s latency at speed 1: the clean shutdown has an order to wait for; a second signal
    # must not wait for it.
    cfg = write_config(tmp_path, speed=1.0, latency=5_000)
    d = Daemon(cfg)
    try:
        d.wait_for(lambda e: e.get("event") == "order.sent", timeout=60)
        d.proc.send_signal(signal.SIGINT)
        d.wait_for(lambda e: e.get("event") == "engine.stopping", timeout=10)
        t0 = time.monotonic()
        d.proc.send_signal(signal.SIGINT)
        code = d.finish(timeout=10)
        elapsed = time.monotonic() - t0
    finally:
        d.kill()
    assert code == 130
    assert elapsed < 2.0
    assert named(d.events, "daemon.forced_exit")


# ---- crash safety ------------------------------------------------------------------------------


def test_sigkill_with_orders_in_flight_then_restart(tmp_path: Path) -> None:
    # Slow creates and fills in parts a tick apart keep orders in flight for a while.
    cfg = write_config(tmp_path, speed=10.0, latency=1_500, partial=1.0, order_timeout=20)
    d = Daemon(cfg)
    killed_with: list[str] = []
    try:
        deadline = time.monotonic() + 90
        while not killed_with and time.monotonic() < deadline:
            sent = d.wait_for(lambda e: e.get("event") == "order.sent", timeout=60)
            time.sleep(0.2)  # let the create reach the venue (or not: both must be safe)
            done = {e["client_id"] for e in named(d.events, "order.done")}
            if sent["client_id"] not in done:
                killed_with.append(sent["client_id"])
                d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=30)
    finally:
        d.kill()
    assert killed_with, "no order was in flight to kill the daemon with"
    assert d.proc.returncode == -signal.SIGKILL
    first = list(d.events)

    code, second, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "400", "--log-format", "json"], timeout=180
    )
    assert code == 0, stderr
    rec = named(second, "recovery.done")
    assert len(rec) == 1 and rec[0]["in_flight"] >= 1, rec
    # Recovery came before the first decision of the restarted daemon.
    names = [e.get("event") for e in second]
    assert names.index("recovery.done") < names.index("hedge.decision")

    # No client id was ever sent twice, across both runs.
    sent_ids = [e["client_id"] for e in named(first + second, "order.sent")]
    assert len(sent_ids) == len(set(sent_ids))

    # Every intent has exactly one order at the venue, or none when the venue never saw it.
    db = sqlite3.connect(f"file:{tmp_path / 'journal.sqlite'}?mode=ro", uri=True)
    intents = dict(db.execute("SELECT client_id, state FROM intents").fetchall())
    venue_orders = sim_orders(tmp_path / "sim.json")
    at_venue: dict[str, int] = {}
    for o in venue_orders:
        cid = o["request"]["client_id"]
        at_venue[cid] = at_venue.get(cid, 0) + 1
    assert set(at_venue) <= set(intents)
    for cid, state in intents.items():
        assert at_venue.get(cid, 0) <= 1
        if state != "rejected":
            assert at_venue.get(cid) == 1, (cid, state)
        assert state in ("filled", "cancelled", "rejected", "expired"), (cid, state)

    # Every fill is booked exactly once: journal fills == venue fills for our client ids.
    journal_fills = db.execute("SELECT trade_id, client_id, amount FROM fills").fetchall()
    venue_fills = [
        (f["trade_id"], f["client_id"], f["amount"])
        for f in json.loads((tmp_path / "sim.json").read_text())["fills"]
        if f["client_id"] in intents
    ]
    assert sorted(journal_fills) == sorted(venue_fills)
    assert len({t for t, _, _ in journal_fills}) == len(journal_fills)
    # The killed order's fills (if any reached the venue) are in the journal once.
    for cid in killed_with:
        venue_amount = sum(a for _, c, a in venue_fills if c == cid)
        journal_amount = sum(a for _, c, a in journal_fills if c == cid)
        assert journal_amount == pytest.approx(venue_amount)

    # The restarted ledger never disagreed with the venue (no double-booked position), and
    # every completed hedge left delta inside the band.
    assert not named(second, "reconcile.position_diff")
    settled = named(second, "hedge.settled")
    assert settled and all(s["inside_band"] for s in settled), settled
    summary = named(second, "daemon.summary")[0]
    assert abs(summary["delta"]["BTC"]["delta_coin"]) <= 2 * 0.4
