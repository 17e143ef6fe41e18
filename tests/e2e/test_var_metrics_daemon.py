"""VaR and CVaR gauges from a running daemon (`python -m bot run`), scraped over HTTP."""

from __future__ import annotations

import math
import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.e2e.test_metrics_daemon import CONFIG, free_port, scrape, value
from tests.helpers import ROOT, clean_env, named, parse_events

# short calls hedged with the perp: gamma is left, so the book has a VaR
RISK = """[risk]
var_sample_s = 5
var_window = 50
var_min_samples = 5
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "linear"
option_type = "call"
strike = 60_000
expiry_days = 30
qty = -5
[accounts.sim]"""


def test_var_gauges_and_daemon_summary(tmp_path: Path) -> None:
    port = free_port()
    cfg = tmp_path / "m.toml"
    text = CONFIG.format(journal=tmp_path / "j.sqlite", port=port)
    cfg.write_text(text.replace("[accounts.sim]", RISK, 1))
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--config", str(cfg), "--log-format", "json"],
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 90
        metrics = ""
        var = None
        while time.monotonic() < deadline:
            try:
                metrics = scrape(port)
            except OSError:
                time.sleep(0.2)
                continue
            var = value(metrics, "hedgebot_var_usd", '{underlying="total"}')
            if var is not None and not math.isnan(var):
                break
            time.sleep(0.2)
        assert var is not None and var > 0, metrics
        assert value(metrics, "hedgebot_var_usd", '{underlying="BTC"}') == var
        cvar = value(metrics, "hedgebot_cvar_usd", '{underlying="total"}')
        assert cvar is not None and cvar >= var
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    risk = named(parse_events(out), "daemon.summary")[0]["risk"]
    assert risk["total"]["samples"] >= 5 and risk["total"]["var_99_usd"] > 0
