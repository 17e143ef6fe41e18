"""`hedgebot ctl` end to end: the real CLI (`python -m bot ctl`) steering the real daemon
(`python -m bot run`, simulated exchange) through a real Mosquitto on a free port. Each action's
printed reply and exit code: 0 done, 1 refused, 2 usage/config error, 3 no broker or no reply."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bot.io.mqtt_schema_out import CommandReply
from tests.e2e.test_mqtt_daemon import SECRET, Daemon, no_traceback, write_config
from tests.helpers import ROOT, clean_env
from tests.test_mqtt_broker import Broker, free_port

pytestmark = pytest.mark.slow


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


def ctl(
    cfg: Path, *argv: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "ctl", "--config", str(cfg), "--timeout", "30", *argv],
        cwd=ROOT,
        env=env or clean_env(),
        capture_output=True,
        text=True,
        timeout=90,
    )


def ok(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    return r.stdout


def refused(r: subprocess.CompletedProcess[str]) -> str:
    assert r.returncode == 1, (r.returncode, r.stdout, r.stderr)
    assert r.stderr.startswith("refused: "), r.stderr
    return r.stderr


def reply(cfg: Path, *argv: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    r = ctl(cfg, "--json", *argv, env=env)
    assert r.returncode in (0, 1), (r.returncode, r.stdout, r.stderr)
    data: dict[str, Any] = json.loads(r.stdout)
    CommandReply.model_validate(data)
    assert data["ok"] is (r.returncode == 0)
    return data


def test_every_action_replies_with_its_exit_code(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path, broker.port)
    d = Daemon(cfg)
    try:
        d.wait_event("hedge.settled")

        out = ok(ctl(cfg, "status"))
        assert out.startswith("ok: status\nbot e2e-mqtt (paper): active")
        assert "BTC: delta" in out and "± 0.4 coin" in out and "feeds ok" in out
        doc = reply(cfg, "status")["result"]
        assert doc["trading_state"] == "active" and doc["bot_id"] == "e2e-mqtt"

        # positions: what the ledger holds, by account and symbol
        pos = reply(cfg, "positions")["result"]
        held = {p["symbol"]: p for p in pos["positions"]}
        assert held["BTC/USDT:USDT"]["account"] == "sim"
        assert held["BTC/USDT:USDT"]["underlying"] == "BTC" and held["BTC/USDT:USDT"]["qty"] != 0
        assert held["BTC/USDC:USDC-261202-60000-C"]["qty"] == -30.0  # the options held
        assert pos["external"] == []
        assert "sim BTC/USDT:USDT (BTC):" in ok(ctl(cfg, "positions"))

        # pause; the state says who paused (not the stale reason of the risk state)
        assert "paused: True" in ok(ctl(cfg, "pause"))
        doc = reply(cfg, "status")["result"]
        assert doc["trading_state"] == "paused" and doc["trading_state_reason"] == "operator"
        assert "was already paused" in ok(ctl(cfg, "pause"))

        # hedge-now while paused would do nothing: refused, saying why
        err = refused(ctl(cfg, "hedge-now", "BTC"))
        assert "the bot is paused" in err and "resume first" in err
        assert "paused: False" in ok(ctl(cfg, "resume"))

        # halt, then resume: ok, but the reply says trading is still halted
        assert "trading_state: halted" in ok(ctl(cfg, "halt", "--reason", "drill"))
        out = ok(ctl(cfg, "resume"))
        assert "trading_state: halted" in out
        assert "note: was not paused; trading is still halted (operator: drill)" in out
        doc = reply(cfg, "status")["result"]
        assert doc["trading_state"] == "halted" and doc["trading_state_reason"] == "operator: drill"
        err = refused(ctl(cfg, "hedge-now"))
        assert "trading is still halted (operator: drill)" in err
        out = ok(ctl(cfg, "set-trading-state", "active"))
        assert "trading_state: active" in out and "note" not in out
        assert reply(cfg, "status")["result"]["trading_state_reason"] == "operator"

        # hedge-now: forced decision; an unknown underlying is refused
        assert 'hedge_now: ["BTC"]' in ok(ctl(cfg, "hedge-now", "BTC"))
        d.wait_event("hedge.decision", lambda e: e["reason"] == "hedge_now")
        assert "unknown underlying 'ETH'" in refused(ctl(cfg, "hedge-now", "ETH"))

        # set: JSON values, validated like the config file
        assert "value: 0.8" in ok(ctl(cfg, "set", "hedge.BTC.policy.band", "0.8"))
        d.wait_event("config.set", lambda e: e["value"] == 0.8)
        assert "band" in refused(ctl(cfg, "set", "hedge.BTC.policy.band", "wide"))
        assert "secret" in refused(ctl(cfg, "set", "mqtt.command_secret", "x"))
        # The state reports the band of the latest decision: the next one uses the new band.
        for _ in range(50):
            if reply(cfg, "status")["result"]["underlyings"]["BTC"]["band"] == 0.8:
                break
            time.sleep(0.2)
        assert reply(cfg, "status")["result"]["underlyings"]["BTC"]["band"] == 0.8

        # usage errors: nothing is sent (no rejection on the bot's side)
        rejected = d.count("command.rejected")
        r = ctl(cfg, "flatten", "BTC")
        assert r.returncode == 2 and "flatten needs --confirm" in r.stderr, r.stderr
        r = ctl(cfg, "hedge-now", "btc")
        assert r.returncode == 2 and "underlying" in r.stderr and "pattern" in r.stderr, r.stderr
        r = ctl(cfg, "set", "hedge.BTC.policy.band")
        assert r.returncode == 2 and "value" in r.stderr
        r = ctl(tmp_path / "missing.toml", "status")
        assert r.returncode == 2 and "missing.toml" in r.stderr, r.stderr
        time.sleep(1)
        assert d.count("command.rejected") == rejected

        # reload and flatten
        assert "reloaded: True" in ok(ctl(cfg, "reload"))
        out = ok(ctl(cfg, "flatten", "BTC", "--confirm"))
        assert out.startswith("ok: flatten") and "paused: True" in out
        d.wait_event("flatten.done")
        doc = reply(cfg, "status")["result"]
        assert doc["trading_state"] == "paused"
        assert doc["trading_state_reason"] == "operator: flatten"
        # the hedge is flat (gone from the ledger's positions); the options are left alone
        after = {p["symbol"]: p["qty"] for p in reply(cfg, "positions")["result"]["positions"]}
        assert "BTC/USDT:USDT" not in after
        assert after == {"BTC/USDC:USDC-261202-60000-C": -30.0}

        # no reply: a bot id nobody serves
        r = ctl(cfg, "--bot-id", "nobody", "--timeout", "1", "status")
        assert r.returncode == 3 and "no reply from bot 'nobody'" in r.stderr
        assert "no retained status" in r.stderr
        code = d.stop()
    finally:
        d.kill()
    assert code == 0, d.stderr
    no_traceback(d)
    # the bot is gone: its retained status says so in the timeout message
    r = ctl(cfg, "--timeout", "1", "status")
    assert r.returncode == 3 and "retained status is 'offline'" in r.stderr, r.stderr


def test_no_broker_is_exit_3(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, free_port())  # nothing listens there
    r = ctl(cfg, "status")
    assert r.returncode == 3 and "cannot reach the broker at 127.0.0.1:" in r.stderr, r.stderr


def test_signed_commands_with_the_config_secret(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path, broker.port)
    signed_env = clean_env(HEDGEBOT_MQTT__COMMAND_SECRET=SECRET)
    d = Daemon(cfg, signed_env)
    try:
        d.wait_event("mqtt.connected")
        # ctl signs with the secret from the environment (or --secrets file), like the daemon
        assert "paused: True" in ok(ctl(cfg, "pause", env=signed_env))
        secrets_file = tmp_path / "ctl.env"
        secrets_file.write_text(f"HEDGEBOT_MQTT__COMMAND_SECRET={SECRET}\n")
        assert "paused: False" in ok(ctl(cfg, "--secrets", str(secrets_file), "resume"))
        # without the secret: refused by the bot, exit 1
        assert "unauthorized: missing or invalid ts" in refused(ctl(cfg, "pause"))
        wrong = clean_env(HEDGEBOT_MQTT__COMMAND_SECRET="not-the-secret")
        assert "unauthorized: bad signature" in refused(ctl(cfg, "pause", env=wrong))
        assert reply(cfg, "status", env=signed_env)["result"]["paused"] is False
        code = d.stop()
    finally:
        d.kill()
    assert code == 0, d.stderr
    no_traceback(d)
