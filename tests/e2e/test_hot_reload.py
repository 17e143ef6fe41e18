"""Hot reload through `python -m bot run`: the config file is watched; a change applies at once,
a restart-only change is reported and not applied, a broken file keeps the running config."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from tests.helpers import ROOT, clean_env, named, parse_events

CONFIG = """
bot_id = "reload"
[journal]
path = "{journal}"
[sim]
seed = {seed}
speed = 20.0
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "spot"
qty = 1
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
[hedge.BTC.policy]
kind = "band"
band = {band}
"""


def wait_for(what: str, cond: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():  # type: ignore[operator]
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def test_config_file_changes_reload_the_running_daemon(tmp_path: Path) -> None:
    cfg = tmp_path / "bot.toml"
    journal = tmp_path / "j.sqlite"
    cfg.write_text(CONFIG.format(journal=journal, seed=3, band=0.5))
    log = tmp_path / "out.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(cfg), "--log-format", "json"],
            stdout=out,
            stderr=subprocess.STDOUT,
            cwd=ROOT,
            env=clean_env(),
        )
    try:

        def events(name: str) -> list[dict[str, object]]:
            return named(parse_events(log.read_text()), name)

        wait_for("the watcher", lambda: events("config.watching") and events("engine.started"))
        cfg.write_text(CONFIG.format(journal=journal, seed=3, band=0.8))
        wait_for("the reload", lambda: events("config.reloaded"))
        first = events("config.reloaded")[0]
        assert first["changes"] == {"hedge.BTC.policy.band": {"from": 0.5, "to": 0.8}}
        assert first["needs_restart"] == []
        # A restart-only change: reported, not applied.
        cfg.write_text(CONFIG.format(journal=journal, seed=4, band=0.8))
        wait_for("the second reload", lambda: len(events("config.reloaded")) == 2)
        second = events("config.reloaded")[1]
        assert second["needs_restart"] == ["sim"] and second["changes"] == {}
        # A broken file: rejected with the reason, the running config stays.
        cfg.write_text(CONFIG.format(journal=journal, seed=4, band="-1"))
        wait_for("the rejection", lambda: events("config.reload_rejected"))
        assert "hedge.BTC.policy.band" in str(events("config.reload_rejected")[0]["errors"])
        assert proc.poll() is None  # still running
    finally:
        proc.terminate()
        proc.wait(timeout=60)
    assert proc.returncode == 0
