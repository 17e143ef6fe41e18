"""Prometheus metrics from a running daemon (`python -m bot run`), scraped over HTTP."""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from tests.helpers import ROOT, clean_env, named, parse_events

CONFIG = """
bot_id = "metrics-e2e"
[journal]
path = "{journal}"
[metrics]
enabled = true
port = {port}
refresh_s = 0.2
[sim]
seed = 3
speed = 100.0
[sim.underlyings.BTC]
price = 60_000.0
vol = 1.0
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "spot"
qty = 3
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
policy = {{ kind = "band", band = 0.5, band_lower = 0.3 }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def value(text: str, name: str, labels: str = "") -> float | None:
    m = re.search(rf"^{re.escape(name)}{re.escape(labels)} (\S+)$", text, re.M)
    return float(m.group(1)) if m else None


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        return str(r.read().decode())


def test_metrics_show_delta_orders_and_fills(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "m.toml"
    cfg.write_text(CONFIG.format(journal=tmp_path / "j.sqlite", port=port))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(cfg), "--log-format", "json"],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 60
        text = ""
        while time.monotonic() < deadline:
            try:
                text = scrape(port)
            except OSError:
                time.sleep(0.2)
                continue
            if (value(text, "hedgebot_fills_total", '{symbol="BTC/USDT:USDT"}') or 0) > 0 and (
                value(text, "hedgebot_delta_coin", '{underlying="BTC"}') is not None
            ):
                break
            time.sleep(0.2)
        # long 3 BTC spot, band 0.5: the bot sold the perp and the delta is back in the band
        assert (value(text, "hedgebot_orders_sent_total", '{symbol="BTC/USDT:USDT"}') or 0) >= 1
        assert (value(text, "hedgebot_fills_total", '{symbol="BTC/USDT:USDT"}') or 0) >= 1
        assert (
            value(text, "hedgebot_filled_contracts_total", '{side="sell",symbol="BTC/USDT:USDT"}')
            or 0
        ) > 2
        delta = value(text, "hedgebot_delta_coin", '{underlying="BTC"}')
        assert delta is not None and abs(delta) < 3
        assert value(text, "hedgebot_trading_state", '{state="active"}') == 1.0
        # the band of the latest decision, each side
        btc = '{underlying="BTC",unit="coin"}'
        assert value(text, "hedgebot_band", btc) == 0.5
        assert value(text, "hedgebot_band_lower", btc) == 0.3
        assert value(text, "hedgebot_band_upper", btc) == 0.5
        assert value(text, "hedgebot_info", '{bot_id="metrics-e2e"}') == 1.0
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    events = parse_events(out)
    assert named(events, "metrics.serving")
    assert named(events, "daemon.summary")[0]["orders_sent"] >= 1


def test_a_busy_metrics_port_does_not_stop_hedging(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        cfg = tmp_path / "m.toml"
        cfg.write_text(CONFIG.format(journal=tmp_path / "j.sqlite", port=port))
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(cfg),
                "--duration",
                "300",
                "--log-format",
                "json",
            ],
            cwd=ROOT,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=120,
        )
    assert r.returncode == 0, r.stderr
    events = parse_events(r.stdout)
    assert named(events, "metrics.unavailable")
    assert named(events, "daemon.summary")[0]["orders_sent"] >= 1
