"""Execution safety through `python -m bot run` on the simulated exchange: fills the venue
re-sends after a restart are booked once (journal + persisted exchange), and SIGTERM with
`execution.on_shutdown = "finish"` lets the hedge in flight complete and reports where the
delta was left against the band."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import pytest

from tests.e2e.test_execution_daemon import Daemon, sim_orders, write_config
from tests.helpers import named, run_bot
from tests.test_check_config import check

pytestmark = pytest.mark.slow


def with_keys(cfg: Path, section: str, lines: str) -> Path:
    cfg.write_text(cfg.read_text().replace(f"[{section}]\n", f"[{section}]\n{lines}\n", 1))
    return cfg


def test_fills_resent_after_a_restart_are_booked_once(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, first, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "200", "--log-format", "json"], timeout=120
    )
    assert code == 0, stderr
    first_trades = {e["trade_id"] for e in named(first, "order.fill")}
    assert first_trades, "the first run hedged"

    # The restarted daemon's venue re-sends every fill it ever made on the fills stream.
    with_keys(cfg, "sim", "resend_fills_on_connect = true")
    code, second, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "60", "--log-format", "json"], timeout=120
    )
    assert code == 0, stderr
    resent = named(second, "sim.fills_resent")
    assert resent and resent[0]["fills"] >= len(first_trades)
    second_trades = [e["trade_id"] for e in named(second, "order.fill")]
    assert not first_trades & set(second_trades), "a fill of the first run was booked again"
    assert len(second_trades) == len(set(second_trades))
    # The ledger never disagreed with the venue's position (a doubled fill would).
    assert not named(second, "reconcile.position_diff")
    summary = named(second, "daemon.summary")[0]
    assert summary["fills"] == len(second_trades)
    venue_fills = json.loads((tmp_path / "sim.json").read_text())["fills"]
    assert len({f["trade_id"] for f in venue_fills}) == len(first_trades) + len(second_trades)


def test_sigterm_with_on_shutdown_finish_lets_the_hedge_complete(tmp_path: Path) -> None:
    # maker_first at speed 1: a post-only child rests (3 s per try) when SIGTERM comes. With
    # "cancel" the parent would stop there; with "finish" it goes on to its taker fallback.
    cfg = write_config(tmp_path, mode="maker_first", maker_reprice=3, speed=1.0)
    with_keys(cfg, "execution", 'on_shutdown = "finish"')
    d = Daemon(cfg)
    try:
        d.wait_for(lambda e: e.get("event") == "order.status" and e.get("status") == "open")
        d.proc.send_signal(signal.SIGTERM)
        code = d.finish(timeout=90)
    finally:
        d.kill()
    assert code == 0
    stopping = named(d.events, "engine.stopping")
    assert stopping and stopping[0]["on_shutdown"] == "finish"
    parent = named(d.events, "order.parent")[0]
    done = [
        e for e in named(d.events, "order.parent_done") if e["client_id"] == parent["client_id"]
    ]
    assert done and done[0]["reason"] == "filled" and done[0]["filled"] > 0, done
    names = [e.get("event") for e in d.events]
    assert names.index("engine.stopping") < names.index("order.parent_done")
    assert names.index("order.parent_done") < names.index("daemon.summary")
    orders = sim_orders(tmp_path / "sim.json")
    assert not [o for o in orders if o["status"] in ("open", "partially_filled")]
    # The summary says where the delta was left: against the band, inside it or not.
    summary = named(d.events, "daemon.summary")[0]
    assert summary["open_orders_left"] == 0
    btc = summary["delta"]["BTC"]
    assert btc["unit"] == "coin" and btc["band"] == pytest.approx(0.4)
    inside = abs(btc["delta"] - btc["target"]) <= btc["band"] + btc["lot"] + 1e-9
    assert btc["inside_band"] is inside
    assert btc["delta"] == pytest.approx(btc["delta_coin"])


def test_sigterm_with_on_shutdown_cancel_reports_the_band_too(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, mode="maker_first", maker_reprice=600, speed=20.0)
    d = Daemon(cfg)
    try:
        d.wait_for(lambda e: e.get("event") == "order.status" and e.get("status") == "open")
        d.proc.send_signal(signal.SIGTERM)
        code = d.finish(timeout=60)
    finally:
        d.kill()
    assert code == 0
    assert named(d.events, "engine.stopping")[0]["on_shutdown"] == "cancel"
    btc = named(d.events, "daemon.summary")[0]["delta"]["BTC"]
    # The resting hedge was cancelled: the drift it was for is still there, outside the band.
    assert btc["inside_band"] is False
    assert abs(btc["delta"] - btc["target"]) > btc["band"]


def test_old_cancel_on_shutdown_key_is_refused_with_its_replacement(tmp_path: Path) -> None:
    cfg = with_keys(write_config(tmp_path), "execution", "cancel_on_shutdown = false")
    r = check(cfg)
    assert r.returncode == 2
    assert "execution.cancel_on_shutdown" in r.stderr
    assert 'replaced by execution.on_shutdown = "cancel" (was true) or "finish"' in r.stderr
    cfg.write_text(cfg.read_text().replace("cancel_on_shutdown = false", 'on_shutdown = "finish"'))
    r = check(cfg)
    assert r.returncode == 0, r.stderr
