"""Config and input safety against the running daemon (`python -m bot run` in a subprocess, a real
Mosquitto on a free port, paho as the operator): relative paths, strict `set`, external position
caps, and a broken reload that must not leak a secret into replies, events, logs or the journal.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_mqtt_daemon import Daemon, Operator, now_ms, wait_until
from tests.helpers import clean_env
from tests.test_mqtt_broker import Broker

pytestmark = pytest.mark.slow

BOT = "e2e-config"
SECRETS = {
    "HEDGEBOT_MQTT__COMMAND_SECRET": "e2e-cmd-secret-31f7",
    "HEDGEBOT_MQTT__PASSWORD": "e2e-mqtt-pass-82c4",
    "HEDGEBOT_ACCOUNTS__SIM__API_KEY": "e2e-sim-key-a9d0",
}
FILE_SECRET = "e2e-file-secret-55e1"

CONFIG = """
bot_id = "{bot}"
[journal]
path = "state/journal.sqlite"
[engine]
stale_after_s = 60
[risk]
max_order_notional_usd = 5_000_000
max_orders_per_minute = 600
halt_file = "state/HALT"
[sim]
seed = 5
speed = 20.0
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.3
jump_intensity = 0.0
[accounts.sim]
exchange = "sim"
[hedge.BTC]
account = "{account}"
instrument = "BTC/USDT:USDT"
[hedge.BTC.policy]
kind = "band"
band = 0.5
[external]
max_sources = 2
max_abs_delta_coin_per_source = 50
max_ttl_s = 3600
[mqtt]
enabled = true
port = {port}
username = "bot"
keepalive = 5
reconnect_min_s = 0.2
reconnect_max_s = 1.0
state_interval_s = 1.0
"""


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[Broker]:
    d = tmp_path / "broker"
    d.mkdir()
    b = Broker(d)
    b.start()
    try:
        yield b
    finally:
        b.stop()


def position(source: str, **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "source": source,
        "symbol": "OTC-FWD",
        "underlying": "BTC",
        "qty": 1,
        "delta_coin": 0.1,
        "ttl_s": 60,
    }
    body.update(over)
    return body


def test_paths_set_rules_external_caps_and_no_leak_on_reload(
    tmp_path: Path, broker: Broker
) -> None:
    etc = tmp_path / "etc"
    etc.mkdir()
    cfg = etc / "bot.toml"
    cfg.write_text(CONFIG.format(bot=BOT, port=broker.port, account="sim"))
    secrets = tmp_path / "secrets.env"
    secrets.write_text(f"HEDGEBOT_ACCOUNTS__SIM__SECRET={FILE_SECRET}\n")
    secret = SECRETS["HEDGEBOT_MQTT__COMMAND_SECRET"]
    op = Operator(broker.port, bot=BOT)
    args = ["--secrets", str(secrets)]
    d = Daemon(cfg, clean_env(**SECRETS), extra_args=args)
    try:
        # The daemon (cwd: the repository) says which absolute files it uses: the config's.
        paths = d.wait_event("daemon.paths")
        assert paths["halt_file"] == str(etc / "state" / "HALT")
        assert paths["journal"] == str(etc / "state" / "journal.sqlite")
        op.state_after(now_ms(), lambda s: s["underlyings"]["BTC"]["delta_coin"] is not None)

        def call(cmd: str, cmd_args: dict[str, Any] | None = None) -> dict[str, Any]:
            return op.call(cmd, cmd_args, secret=secret)

        # set: strict numbers, restart-only settings, lower-only risk limits.
        for bad in ("0.3", True, "1e99"):
            r = call("set", {"path": "hedge.BTC.policy.band", "value": bad})
            assert not r["ok"] and "hedge.BTC.policy.band" in r["error"], r
        r = call("set", {"path": "accounts.sim.mode", "value": "live"})
        assert not r["ok"] and "restart-only: edit the file and restart" in r["error"]
        r = call("set", {"path": "risk.halt_file", "value": "/tmp/elsewhere"})
        assert not r["ok"] and "restart-only" in r["error"]
        r = call("set", {"path": "risk.max_order_notional_usd", "value": 9_000_000})
        assert not r["ok"] and "to raise it, edit the file and reload" in r["error"]
        assert call("set", {"path": "risk.max_order_notional_usd", "value": 1_000_000})["ok"]
        assert call("set", {"path": "risk.max_order_notional_usd", "value": 5_000_000})["ok"]
        assert call("set", {"path": "hedge.BTC.policy.band", "value": 0.4})["ok"]

        # External positions beyond the configured caps are refused with the rule.
        op.publish("positions/in", position("a", delta_coin=1e9))
        op.publish("positions/in", position("a", qty=1e300))
        op.publish("positions/in", position("a", ttl_s=30 * 86_400))
        op.publish("positions/in", position("a"))
        op.publish("positions/in", position("b"))
        op.publish("positions/in", position("c"))
        wait_until(lambda: d.count("position.rejected") >= 4, 60, "four refused positions")
        reasons = " | ".join(e["reason"] for e in d.named("position.rejected"))
        for rule in (
            "external.max_abs_delta_coin_per_source",
            "external.max_abs_qty",
            "external.max_ttl_s",
            "external.max_sources",
        ):
            assert rule in reasons, reasons
        wait_until(lambda: len(d.named("external.position")) >= 2, 60, "two accepted positions")
        assert {e["source"] for e in d.named("external.position")} == {"a", "b"}

        # A broken file on reload (by command and by SIGHUP) keeps the running config and says
        # why, without the secrets the environment and the secrets file hold.
        cfg.write_text(CONFIG.format(bot=BOT, port=broker.port, account="typo"))
        r = call("reload")
        assert not r["ok"] and "hedge.BTC.account: no account named 'typo'" in r["error"], r
        d.proc.send_signal(signal.SIGHUP)
        d.wait_event("config.reload_failed")

        # The kill switch from another directory, with the broken file: the daemon halts.
        elsewhere = tmp_path / "elsewhere"
        elsewhere.mkdir()
        h = subprocess.run(
            [sys.executable, "-m", "bot", "halt", "--config", "../etc/bot.toml"],
            cwd=elsewhere,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert h.returncode == 0, h.stderr
        d.wait_event("trading.state", lambda e: e.get("reason") == "kill_file")
        code = d.stop()
    finally:
        d.kill()
        op.close()
    assert code == 0, d.stderr
    journal = b"".join(p.read_bytes() for p in (etc / "state").glob("journal.sqlite*"))
    with d._lock:
        logs = "".join(d.raw)
    logs += d.stderr
    published = repr(op.snapshot("events")) + repr(op.snapshot("replies"))
    published += repr(op.snapshot("states"))
    assert "config.reload_rejected" in published and b"reload_rejected" in journal
    for value in [*SECRETS.values(), FILE_SECRET]:
        assert value not in logs, value
        assert value not in published, value
        assert value.encode() not in journal, value
    assert "Traceback" not in logs
    assert (etc / "state" / "HALT").exists()
