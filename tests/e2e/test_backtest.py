"""`hedgebot backtest` end to end, and parity: the daemon on a virtual clock and the backtest
make the same decisions and send the same orders on the same market."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.backtest.attribution import PARTS
from bot.io.journal import Journal
from tests.helpers import ROOT, clean_env, parse_events, run_bot

CONFIG = """
bot_id = "parity"
[journal]
path = "{journal}"
[engine]
stale_after_s = 120
reconcile_interval_s = 600
[execution]
max_slippage_bps = 20
order_timeout_s = 10
book_max_age_s = 120
[risk]
max_order_contracts = 100
max_orders_per_minute = 60
[sim]
seed = {seed}
tick_ms = 60000
latency_ms = 200
partial_fill_rate = 0.3
reject_rate = 0.05
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.9
jump_intensity = 50.0
jump_std = 0.01
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
option_type = "call"
strike = 60_000
expiry_days = 365
qty = -20
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
[hedge.BTC.policy]
kind = "band"
band = 0.1
"""


def write_config(tmp: Path, seed: int = 11) -> Path:
    path = tmp / "hedge.toml"
    path.write_text(CONFIG.format(journal=tmp / "journal.sqlite", seed=seed))
    return path


def backtest(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(**env),
        timeout=300,
    )


def trades(events: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """What must agree: each trading decision and each order sent, in order, with its time."""
    out: list[tuple[Any, ...]] = []
    for e in events:
        if e.get("event") == "order.sent":
            out.append(("order", e["ts_ms"], e["symbol"], e["side"], e["amount"], e["price"]))
        elif e.get("event") == "hedge.decision" and e.get("trade"):
            out.append(("decision", e["ts_ms"], round(e["gap_coin"], 9), e["reason"]))
    return out


def test_backtest_report_is_complete_and_repeats_byte_for_byte(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    a, b = tmp_path / "a", tmp_path / "b"
    args = ["--config", str(cfg), "--days", "0.5", "--paths", "3", "--seed", "5"]
    ra = backtest([*args, "--out", str(a)])
    rb = backtest([*args, "--out", str(b), "--jobs", "1"])  # processes do not change it
    assert ra.returncode == 0, ra.stderr
    assert rb.returncode == 0, rb.stderr
    assert (a / "report.json").read_bytes() == (b / "report.json").read_bytes()
    report = json.loads((a / "report.json").read_text())
    s = report["summary"]
    assert report["paths"] == 3 and [p["seed"] for p in report["per_path"]] == [5, 6, 7]
    assert s["ticks"] == 3 * 720
    for key in ("hedged_pnl_usd", "hedged_pnl_coin", "fees_usd", "slippage_usd"):
        assert set(s[key]) == {"mean", "std", "cvar_5"}
    assert s["hedged_pnl_usd"]["cvar_5"] == min(p["pnl_usd"] for p in report["per_path"])
    assert s["orders"]["mean"] > 0 and s["fees_usd"]["mean"] > 0
    assert 0.5 < s["share_in_band"]["mean"] <= 1.0
    timing = json.loads((a / "timing.json").read_text())
    assert timing["ticks"] == 3 * 720 and timing["ticks_per_s"] > 0
    assert "hedged P&L USD" in ra.stdout and "ticks/s" in ra.stdout
    # P&L attribution: the parts of each path add up to its hedged P&L.
    for p in report["per_path"]:
        parts = p["attribution"]
        assert set(parts) == {*PARTS}
        assert sum(parts.values()) == pytest.approx(p["pnl_usd"], abs=1e-6)
        assert parts["fees"] == -p["fees_usd"]
    assert "P&L attribution  delta" in ra.stdout
    # The picture beside the JSON: a PNG that decodes.
    png = (a / "report.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and int.from_bytes(png[16:20], "big") > 100
    import matplotlib.image

    assert matplotlib.image.imread(a / "report.png").ndim == 3
    assert f"picture          {a / 'report.png'}" in ra.stdout
    # Another seed is another market.
    rc = backtest([*args[:-1], "6", "--out", str(tmp_path / "c")])
    assert rc.returncode == 0, rc.stderr
    assert (tmp_path / "c" / "report.json").read_bytes() != (a / "report.json").read_bytes()


def test_without_matplotlib_the_backtest_writes_its_json_and_says_why(tmp_path: Path) -> None:
    # A matplotlib that cannot be imported, ahead of the real one on the path.
    shim = tmp_path / "shim" / "matplotlib"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text("raise ImportError('no matplotlib here')\n")
    path = os.pathsep.join([str(tmp_path / "shim"), os.environ.get("PYTHONPATH", str(ROOT))])
    out = tmp_path / "out"
    args = ["--config", str(write_config(tmp_path)), "--days", "0.05", "--out", str(out)]
    r = backtest(args, PYTHONPATH=path)
    assert r.returncode == 0, r.stderr
    assert json.loads((out / "report.json").read_text())["paths"] == 1
    assert not (out / "report.png").exists()
    assert "picture          none: matplotlib is not installed" in r.stdout
    assert "hedgebot[lab]" in r.stdout


def test_backtest_refuses_real_exchanges_and_bad_arguments(tmp_path: Path) -> None:
    cfg = tmp_path / "real.toml"
    cfg.write_text(
        write_config(tmp_path).read_text().replace('exchange = "sim"', 'exchange = "deribit"')
    )
    r = backtest(["--config", str(cfg)])
    assert r.returncode == 2 and "simulated exchange" in r.stderr
    r = backtest(["--config", str(write_config(tmp_path)), "--paths", "0"])
    assert r.returncode == 2 and "--paths" in r.stderr


def test_paper_daemon_and_backtest_decide_and_order_alike(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    # The whole daemon (streams, reconciliation, heartbeat, executor) on the virtual clock.
    code, events, err = run_bot(
        [
            "run",
            "--config",
            str(cfg),
            "--clock",
            "virtual",
            "--duration",
            "21600",
            "--log-format",
            "json",
        ],
        timeout=300,
    )
    assert code == 0, err
    r = backtest(["--config", str(cfg), "--days", "0.25", "--events", "--out", str(tmp_path)])
    assert r.returncode == 0, r.stderr
    replay = parse_events((tmp_path / "events-11.jsonl").read_text())
    live, back = trades(events), trades(replay)
    assert len([t for t in back if t[0] == "order"]) >= 5  # a market that makes it trade
    assert live == back
    # The daemon's journal holds every trading decision, at its simulated time.
    journal = Journal.open_readonly(tmp_path / "journal.sqlite")
    journaled = [
        (d["ts"], d["reason"])
        for d in journal.decisions_between(axis="clock")
        if d["action"] == "trade"
    ]
    journal.close()
    assert journaled == [(t[1], t[3]) for t in live if t[0] == "decision"]


def test_virtual_daemon_needs_an_end_and_no_network(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    code, _, err = run_bot(["run", "--config", str(cfg), "--clock", "virtual"])
    assert code == 2 and "--duration" in err
    mqtt = tmp_path / "mqtt.toml"
    mqtt.write_text(cfg.read_text() + "\n[mqtt]\nenabled = true\n")
    code, _, err = run_bot(["run", "--config", str(mqtt), "--clock", "virtual", "--duration", "60"])
    assert code == 2 and "[mqtt]" in err
