"""The MQTT control plane end to end: the real daemon (`python -m bot run` in a subprocess, on the
simulated exchange) against a real Mosquitto the test starts on a free port, driven by a paho
client as an operator would.

Every wait polls for a condition with a generous deadline (2-core CI machines are slow); no test
relies on a fixed sleep for correctness.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bot.io.command_auth import signed
from bot.io.mqtt_schema_out import CommandReply, EventMessage, StateMessage
from tests.helpers import ROOT, clean_env, parse_events
from tests.test_mqtt_broker import Broker

pytestmark = pytest.mark.slow

BOT = "e2e-mqtt"
SECRET = "e2e-command-secret"

CONFIG = """
bot_id = "{bot}"
[journal]
path = "{journal}"
[engine]
hedge_view = "usd"
stale_after_s = 60
[execution]
max_slippage_bps = 50
order_timeout_s = 10
shutdown_timeout_s = 20
[risk]
max_order_notional_usd = 5_000_000
max_orders_per_minute = 600
halt_file = "{halt}"
[sim]
seed = {seed}
speed = {speed}
tick_ms = 1000
latency_ms = 100
partial_fill_rate = 0.0
reject_rate = 0.0
level_notional_usd = 2_000_000
[sim.underlyings.BTC]
price = 60_000.0
vol = {vol}
jump_intensity = {jumps}
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
policy = {{ kind = "band", band = {band} }}
[mqtt]
enabled = true
host = "127.0.0.1"
port = {port}
keepalive = 5
reconnect_min_s = 0.2
reconnect_max_s = 1.0
state_interval_s = 1.0
max_payload_bytes = 4096
"""


def write_config(tmp_path: Path, port: int, **over: Any) -> Path:
    values: dict[str, Any] = {
        "bot": BOT,
        "journal": tmp_path / "journal.sqlite",
        "halt": tmp_path / "HALT",
        "seed": 3,
        "speed": 60.0,
        "vol": 0.8,
        "jumps": 50.0,
        "band": 0.4,
        "port": port,
    }
    values.update(over)
    cfg = tmp_path / "mqtt.toml"
    cfg.write_text(CONFIG.format(**values))
    return cfg


def wait_until(cond: Callable[[], Any], timeout: float = 60.0, what: str = "condition") -> Any:
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        time.sleep(0.05)


class Daemon:
    """`python -m bot run` in the background; its JSON log lines collected as they come."""

    def __init__(
        self, cfg: Path, env: dict[str, str] | None = None, extra_args: list[str] | None = None
    ) -> None:
        args = [sys.executable, "-m", "bot", "run", "--config", str(cfg), "--log-format", "json"]
        args += extra_args or []
        self.proc = subprocess.Popen(
            args,
            cwd=ROOT,
            env=env or clean_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        self.events: list[dict[str, Any]] = []
        self.raw: list[str] = []
        self._err: list[str] = []
        self._lock = threading.Lock()
        self._out = threading.Thread(target=self._read_out, daemon=True)
        self._out.start()
        self._errt = threading.Thread(target=self._read_err, daemon=True)
        self._errt.start()

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            with self._lock:
                self.raw.append(line)
                self.events.extend(parse_events(line))

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._lock:
                self._err.append(line)

    @property
    def stderr(self) -> str:
        with self._lock:
            return "".join(self._err)

    def named(self, name: str) -> list[dict[str, Any]]:
        with self._lock:
            return [e for e in self.events if e.get("event") == name]

    def count(self, name: str) -> int:
        return len(self.named(name))

    def wait_event(
        self, name: str, pred: Callable[[dict[str, Any]], bool] = lambda e: True, **kw: Any
    ) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            self.assert_alive()
            return next((e for e in self.named(name) if pred(e)), None)

        try:
            found: dict[str, Any] = wait_until(find, what=f"log event {name}", **kw)
        except AssertionError as e:
            with self._lock:
                tail = [x.get("event") for x in self.events[-30:]]
            raise AssertionError(
                f"{e}; last events: {tail}; stderr: {self.stderr[-2000:]}"
            ) from None
        return found

    def assert_alive(self) -> None:
        assert self.proc.poll() is None, f"daemon exited {self.proc.returncode}: {self.stderr}"

    def stop(self, timeout: float = 90.0) -> int:
        self.proc.send_signal(signal.SIGTERM)
        code = self.proc.wait(timeout=timeout)
        self._out.join(timeout=10)
        self._errt.join(timeout=10)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)
        self._out.join(timeout=10)
        self._errt.join(timeout=10)


class Operator:
    """A paho client subscribed to everything the bot publishes; re-subscribes after a broker
    restart. Messages are collected per topic suffix."""

    def __init__(self, port: int, bot: str = BOT, persistent: bool = False) -> None:
        self.base = f"hedgebot/{bot}"
        self.lock = threading.Lock()
        self.status: list[str] = []
        self.states: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.replies: list[dict[str, Any]] = []
        self.connects = 0
        # A persistent session (with a broker that persists) keeps the subscription across a
        # broker restart, so what the bot publishes before we are back is queued for us.
        self.client = paho.Client(
            CallbackAPIVersion.VERSION2,
            client_id=f"op-{uuid.uuid4().hex}",
            clean_session=not persistent,
        )
        self.client.on_connect = self._on_connect
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(1, 2)
        self.client.connect("127.0.0.1", port, keepalive=10)
        self.client.loop_start()
        wait_until(lambda: self.connects > 0, 20, "operator connected")

    def _on_connect(self, client: paho.Client, *_: Any) -> None:
        client.subscribe(f"{self.base}/#", qos=1)
        with self.lock:
            self.connects += 1

    def _on_message(self, client: paho.Client, userdata: Any, msg: paho.MQTTMessage) -> None:
        suffix = msg.topic[len(self.base) + 1 :]
        with self.lock:
            if suffix == "status":
                self.status.append(msg.payload.decode())
            elif suffix == "state":
                self.states.append(json.loads(msg.payload))
            elif suffix == "events":
                self.events.append(json.loads(msg.payload))
            elif suffix == "cmd/reply":
                self.replies.append(json.loads(msg.payload))

    def close(self) -> None:
        self.client.loop_stop()
        self.client.disconnect()

    # --- sending ---

    def publish(
        self, suffix: str, payload: bytes | str | dict[str, Any], retain: bool = False
    ) -> None:
        body = json.dumps(payload) if isinstance(payload, dict) else payload
        info = self.client.publish(f"{self.base}/{suffix}", body, qos=1, retain=retain)
        info.wait_for_publish(timeout=20)

    def call(
        self, cmd: str, args: dict[str, Any] | None = None, secret: str | None = None, **kw: Any
    ) -> dict[str, Any]:
        """Send one command and wait for its reply."""
        body: dict[str, Any] = {"id": f"{cmd}-{uuid.uuid4().hex[:8]}", "cmd": cmd}
        if args is not None:
            body["args"] = args
        if secret is not None:
            body = signed(body, secret, time.time_ns() // 1_000_000)
        self.publish("cmd", body)
        return self.reply(body["id"], **kw)

    def reply(self, cmd_id: str, timeout: float = 60.0) -> dict[str, Any]:
        found: dict[str, Any] = wait_until(
            lambda: next((r for r in self.snapshot("replies") if r["id"] == cmd_id), None),
            timeout,
            f"reply to {cmd_id}",
        )
        CommandReply.model_validate(found)
        return found

    # --- reading ---

    def snapshot(self, what: str) -> list[Any]:
        with self.lock:
            return list(getattr(self, what))

    def state_after(
        self, t_ms: int, pred: Callable[[dict[str, Any]], bool] = lambda s: True, **kw: Any
    ) -> dict[str, Any]:
        """The first state published after wall time `t_ms` that satisfies `pred`."""
        found: dict[str, Any] = wait_until(
            lambda: next(
                (s for s in self.snapshot("states") if s["ts_ms"] > t_ms and pred(s)), None
            ),
            what="a state message",
            **kw,
        )
        return found


def now_ms() -> int:
    return time.time_ns() // 1_000_000


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


@pytest.fixture
def operator(broker: Broker) -> Iterator[Operator]:
    op = Operator(broker.port)
    try:
        yield op
    finally:
        op.close()


def start_daemon(cfg: Path, env: dict[str, str] | None = None) -> Daemon:
    return Daemon(cfg, env)


def idle(op: Operator, after_ms: int) -> dict[str, Any]:
    """A state (published after `after_ms`) with no open order."""
    return op.state_after(after_ms, lambda s: s["open_orders"] == [], timeout=60)


def no_traceback(d: Daemon) -> None:
    assert "Traceback" not in d.stderr, d.stderr
    with d._lock:
        raw = "".join(d.raw)
    assert "Traceback" not in raw
    assert not d.named("mqtt.session_crashed")
    assert not d.named("mqtt.message_failed")
    assert not d.named("mqtt.command_crashed")


# --- telemetry, status and the last will --------------------------------------------------------


def test_state_events_status_and_last_will(
    tmp_path: Path, broker: Broker, operator: Operator
) -> None:
    cfg = write_config(tmp_path, broker.port)
    d = start_daemon(cfg)
    try:
        wait_until(lambda: "online" in operator.snapshot("status"), 60, "status online")
        d.wait_event("order.sent")
        state = operator.state_after(0, lambda s: s["underlyings"]["BTC"]["delta_coin"] is not None)
        doc = StateMessage.model_validate(state)
        assert doc.bot_id == BOT and doc.mode == "paper"
        assert doc.trading_state == "active"
        btc = doc.underlyings["BTC"]
        assert btc.band == 0.4 and btc.unit == "coin" and btc.target == 0.0
        assert (btc.band_lower, btc.band_upper, btc.policy) == (0.4, 0.4, "band")
        assert btc.delta_usd is not None and btc.price is not None
        assert btc.vega_usd is not None and btc.theta_usd is not None
        assert doc.accounts["sim"].exchange == "sim" and doc.accounts["sim"].mode == "paper"
        assert doc.feeds and all(f.ok for f in doc.feeds.values())
        assert isinstance(doc.open_orders, list)
        assert doc.mqtt is not None and doc.mqtt.connected

        # The events stream carries decisions, orders and fills, validated by the schema.
        def kinds() -> set[str]:
            return {e["kind"] for e in operator.snapshot("events")}

        wait_until(lambda: {"decision", "order", "fill"} <= kinds(), 60, "decision/order/fill")
        for e in operator.snapshot("events")[:200]:
            EventMessage.model_validate(e)
            assert e["bot_id"] == BOT
        sent_log = {e["client_id"] for e in d.named("order.sent")}
        sent_mqtt = {
            e["client_id"] for e in operator.snapshot("events") if e["event"] == "order.sent"
        }
        assert sent_mqtt and sent_mqtt <= sent_log

        # `hedgebot status` reads the retained state through the CLI.
        r = subprocess.run(
            [sys.executable, "-m", "bot", "status", "--config", str(cfg), "--timeout", "20"],
            cwd=ROOT,
            env={**clean_env(), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert BOT in r.stdout and "online" in r.stdout and "paper" in r.stdout
        assert "greeks" in r.stdout and "vega usd/vol" in r.stdout and "theta usd/yr" in r.stdout
        r = subprocess.run(
            [sys.executable, "-m", "bot", "fleet", "--config", str(cfg), "--timeout", "3"],
            cwd=ROOT,
            env={**clean_env(), "COLUMNS": "200"},
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        assert BOT in r.stdout

        # SIGKILL: no clean disconnect, so the broker publishes the last will.
        d.proc.send_signal(signal.SIGKILL)
        d.proc.wait(timeout=30)
        wait_until(lambda: operator.snapshot("status")[-1:] == ["offline"], 30, "last will offline")
    finally:
        d.kill()
    assert d.proc.returncode == -signal.SIGKILL


# --- each command ---------------------------------------------------------------------------


def test_each_command_changes_behaviour_and_replies(
    tmp_path: Path, broker: Broker, operator: Operator
) -> None:
    cfg = write_config(tmp_path, broker.port)
    d = start_daemon(cfg)
    try:
        d.wait_event("hedge.settled")

        # status: the state document in the reply
        r = operator.call("status")
        assert r["ok"] and r["cmd"] == "status"
        assert StateMessage.model_validate(r["result"]).underlyings["BTC"].band == 0.4

        # pause: nothing is sent while paused
        r = operator.call("pause")
        assert r["ok"] and r["result"] == {"paused": True}
        t = now_ms()
        idle(operator, t)
        paused = operator.state_after(t, lambda s: s["trading_state"] == "paused")
        assert paused["paused"] is True
        sent_before = d.count("order.sent")
        # hedge-now while paused would trade nothing: pause wins, and the reply says so
        r = operator.call("hedge-now", {"underlying": "BTC"})
        assert not r["ok"] and "paused" in r["error"] and "resume" in r["error"], r
        d.wait_event("hedge.decision", lambda e: e["reason"] == "paused")
        # two wall seconds (two simulated minutes) with no order
        time.sleep(2)
        assert d.count("order.sent") == sent_before

        # resume: hedging continues; hedge-now forces a trade to the target inside the band
        r = operator.call("resume")
        assert r["ok"] and r["result"] == {"paused": False, "trading_state": "active"}
        operator.state_after(now_ms(), lambda s: s["trading_state"] == "active")
        idle(operator, now_ms())
        n_forced = len([e for e in d.named("hedge.decision") if e["reason"] == "hedge_now"])
        r = operator.call("hedge-now")
        assert r["ok"] and r["result"] == {"hedge_now": ["BTC"]}
        d.wait_event(
            "hedge.decision",
            lambda e: e["reason"] == "hedge_now",
        )
        assert len([e for e in d.named("hedge.decision") if e["reason"] == "hedge_now"]) > n_forced
        r = operator.call("hedge-now", {"underlying": "ETH"})
        assert not r["ok"] and "unknown underlying" in r["error"]

        # set: a valid value is applied, logged and published
        r = operator.call("set", {"path": "hedge.BTC.policy.band", "value": 0.8})
        assert r["ok"], r
        d.wait_event(
            "config.set", lambda e: e["path"] == "hedge.BTC.policy.band" and e["value"] == 0.8
        )
        wait_until(lambda: [e for e in operator.snapshot("events") if e["event"] == "config.set"])
        operator.state_after(now_ms() - 1, lambda s: s["underlyings"]["BTC"]["band"] == 0.8)
        # set: an invalid value is rejected, names the field and changes nothing
        for bad in (-1, "wide", None):
            r = operator.call("set", {"path": "hedge.BTC.policy.band", "value": bad})
            assert not r["ok"] and "band" in r["error"], r
        r = operator.call("set", {"path": "hedge.BTC.nope", "value": 1})
        assert not r["ok"], r
        # the old place of the band says where it went
        r = operator.call("set", {"path": "hedge.BTC.band", "value": 0.3})
        assert not r["ok"] and "moved to [hedge.BTC.policy]" in r["error"], r
        r = operator.call("set", {"path": "hedge.BTC.policy.kind", "value": "gamma"})
        assert not r["ok"] and "hedge.BTC.policy.kind" in r["error"], r
        r = operator.call("set", {"path": "mqtt.command_secret", "value": "x"})
        assert not r["ok"] and "secret" in r["error"]
        st = operator.call("status")["result"]
        assert st["underlyings"]["BTC"]["band"] == 0.8
        assert len(d.named("config.set")) == 1

        # reload with a broken file keeps the running config
        good = cfg.read_text()
        cfg.write_text(good + "\n[hedge.BTC\nband = 'x'\n")
        r = operator.call("reload")
        assert not r["ok"] and r["error"], r
        assert operator.call("status")["result"]["underlyings"]["BTC"]["band"] == 0.8
        cfg.write_text(good.replace("band = 0.4", "band = -3"))
        r = operator.call("reload")
        assert not r["ok"] and "band" in r["error"], r
        assert operator.call("status")["result"]["underlyings"]["BTC"]["band"] == 0.8
        # reload with a good file applies it
        cfg.write_text(good.replace("band = 0.4", "band = 0.5"))
        r = operator.call("reload")
        assert r["ok"] and r["result"]["reloaded"] is True, r
        assert operator.call("status")["result"]["underlyings"]["BTC"]["band"] == 0.5

        # halt: the kill switch; the risk gate refuses every order until set active again
        r = operator.call("halt", {"reason": "drill"})
        assert r["ok"] and r["result"]["trading_state"] == "halted", r
        d.wait_event("trading.state", lambda e: e["state"] == "halted")
        assert d.named("trading.state")[-1]["reason"] == "operator: drill"
        t = now_ms()
        halted = operator.state_after(t, lambda s: s["trading_state"] == "halted")
        assert halted["trading_state_reason"] == "operator: drill"
        idle(operator, t)
        sent_before = d.count("order.sent")
        # hedge-now while halted would trade nothing: refused, naming the halt
        r = operator.call("hedge-now")
        assert not r["ok"] and "still halted (operator: drill)" in r["error"], r
        d.wait_event("hedge.decision", lambda e: e["reason"].startswith("halted:operator"))
        time.sleep(2)
        assert d.count("order.sent") == sent_before
        r = operator.call("set-trading-state", {"state": "sideways"})
        assert not r["ok"] and "state" in r["error"]
        r = operator.call("set-trading-state", {"state": "active"})
        assert r["ok"] and r["result"] == {"trading_state": "active", "reason": "operator"}
        operator.state_after(now_ms(), lambda s: s["trading_state"] == "active")
        forced = len([e for e in d.named("hedge.decision") if e["reason"] == "hedge_now"])
        r = operator.call("hedge-now")
        assert r["ok"]
        wait_until(
            lambda: (
                len([e for e in d.named("hedge.decision") if e["reason"] == "hedge_now"]) > forced
            ),
            60,
            "trading again after the halt is lifted",
        )

        # flatten: refused without the confirmation, then closes the hedge and pauses
        r = operator.call("flatten", {"underlying": "BTC"})
        assert not r["ok"] and "confirm" in r["error"]
        r = operator.call("flatten", {"underlying": "BTC", "confirm": 1})
        assert not r["ok"] and "confirm" in r["error"]
        # Paused first, so no new hedge starts between reading the position and flattening.
        assert operator.call("pause")["ok"]
        idle(operator, now_ms())
        position = abs(_hedge_position(d))
        assert position > 0.5, "the book is short calls: the bot holds a long hedge"
        r = operator.call("flatten", {"underlying": "BTC", "confirm": "FLATTEN"})
        assert r["ok"] and r["result"]["paused"] is True, r
        (order,) = r["result"]["flatten"]
        assert order["amount"] == pytest.approx(position, abs=1e-6)
        sent = d.wait_event("order.sent", lambda e: e["client_id"] == order["client_id"])
        assert sent["reduce_only"] is True and sent["side"] == "sell"
        d.wait_event("order.done", lambda e: e["client_id"] == order["client_id"])
        st = operator.state_after(now_ms(), lambda s: s["open_orders"] == [])
        assert st["trading_state"] == "paused"
        wait_until(lambda: abs(_hedge_position(d)) < 1e-6, 60, "hedge flattened")

        code = d.stop()
    finally:
        d.kill()
    assert code == 0, d.stderr
    no_traceback(d)
    # Every command is an event, and the final summary and `offline` went out before exit.
    assert d.named("command.done") and d.named("command.failed") and d.named("command.rejected")
    wait_until(lambda: operator.snapshot("status")[-1:] == ["offline"], 30, "offline")
    assert any(e["event"] == "daemon.summary" for e in operator.snapshot("events"))


def _hedge_position(d: Daemon) -> float:
    """The hedge position from the last fills in the log (the sim starts flat)."""
    qty = 0.0
    for f in d.named("order.fill"):
        if f.get("symbol", "BTC/USDT:USDT") == "BTC/USDT:USDT":
            qty += f["amount"] if f["side"] == "buy" else -f["amount"]
    return qty


# --- hostile payloads ---------------------------------------------------------------------------


def hostile_payloads(valid: dict[str, Any], n: int = 1000) -> list[tuple[bytes, str | None]]:
    """`n` payloads that must all be refused, each with the id its reply must carry (None when
    it has no usable id). Several would trade if accepted (resume, hedge-now, flatten, set)."""
    out: list[tuple[bytes, str | None]] = []
    body: dict[str, Any]
    ms = time.time_ns() // 1_000_000
    replay = json.dumps(valid).encode()
    for i in range(n):
        cid = f"bad-{i}"
        k = i % 10
        if k == 0:  # not JSON at all
            out.append((b"{not json" + str(i).encode(), None))
        elif k == 1:  # JSON, but not an object or no id
            out.append((json.dumps([i, "resume"]).encode(), None))
        elif k == 2:  # oversized (max_payload_bytes = 4096), with an id
            body = {"id": cid, "cmd": "resume", "pad": "x" * (4096 + i)}
            out.append((json.dumps(body).encode(), cid))
        elif k == 3:  # unsigned, would resume trading
            out.append((json.dumps({"id": cid, "cmd": "resume"}).encode(), cid))
        elif k == 4:  # wrongly signed flatten
            body = signed(
                {"id": cid, "cmd": "flatten", "args": {"confirm": True}}, "wrong-secret", ms
            )
            out.append((json.dumps(body).encode(), cid))
        elif k == 5:  # correctly signed but stale (ts an hour ago)
            body = signed({"id": cid, "cmd": "hedge-now"}, SECRET, ms - 3_600_000)
            out.append((json.dumps(body).encode(), cid))
        elif k == 6:  # signed, then tampered with (the sig no longer matches)
            args = {"path": "hedge.BTC.policy.band", "value": 1}
            body = signed({"id": cid, "cmd": "set", "args": args}, SECRET, ms)
            body = {**body, "args": {**args, "value": 0.01}}
            out.append((json.dumps(body).encode(), cid))
        elif k == 7:  # replay of the valid pause that already ran: same id, same sig
            out.append((replay, str(valid["id"])))
        elif k == 8:  # unknown command, unknown keys, wrong types
            body = {"id": cid, "cmd": ["halt", "sudo", "resume"][i % 3], "args": {"x": i}}
            out.append((json.dumps(body).encode(), cid))
        else:  # a signed command with a malformed sig and bad field types
            body = {"id": cid, "cmd": "resume", "ts": "now", "sig": "zz" * 32}
            out.append((json.dumps(body).encode(), cid))
    return out


def test_thousand_hostile_commands_change_nothing(
    tmp_path: Path, broker: Broker, operator: Operator
) -> None:
    cfg = write_config(tmp_path, broker.port)
    env = clean_env(HEDGEBOT_MQTT__COMMAND_SECRET=SECRET)
    d = start_daemon(cfg, env)
    try:
        d.wait_event("hedge.settled")
        # Unsigned commands are refused outright once a secret is set.
        r = operator.call("status")
        assert not r["ok"] and "unauthorized" in r["error"]

        # Pause with a valid signed command, and let what is in flight finish: from here on,
        # an order can only come from a hostile payload that got through.
        pause = signed({"id": "the-pause", "cmd": "pause"}, SECRET, now_ms())
        operator.publish("cmd", pause)
        assert operator.reply("the-pause")["ok"]
        idle(operator, now_ms())
        sent_after_pause = d.count("order.sent")
        rejected_before = d.count("command.rejected")

        payloads = hostile_payloads(pause)
        for body, _ in payloads:
            info = operator.client.publish(f"{operator.base}/cmd", body, qos=1)
        info.wait_for_publish(timeout=60)
        with_id = [cid for _, cid in payloads if cid is not None]

        def replied() -> bool:
            ids = [r["id"] for r in operator.snapshot("replies")]
            return sum(1 for i in ids if str(i).startswith("bad-")) >= len(
                [c for c in with_id if c.startswith("bad-")]
            ) and ids.count("the-pause") >= 1 + with_id.count("the-pause")

        wait_until(replied, 180, "an error reply to every hostile payload with an id")
        # The daemon is up and every one was refused, none executed.
        d.assert_alive()
        wait_until(
            lambda: d.count("command.rejected") - rejected_before >= len(payloads),
            120,
            "a command.rejected event per payload",
        )
        replies = operator.snapshot("replies")
        by_id: dict[str, list[dict[str, Any]]] = {}
        for r in replies:
            by_id.setdefault(str(r["id"]), []).append(r)
        for cid in set(with_id):
            got = by_id[cid]
            expected = with_id.count(cid) + (1 if cid == "the-pause" else 0)
            assert len(got) == expected, (cid, got)
            errors = [r for r in got if not r["ok"]]
            assert len(errors) == with_id.count(cid), (cid, got)
            for r in errors:
                assert r["error"], r
        reasons = {r["error"].split(":")[0] for r in replies if not r["ok"]}
        assert {"payload too large", "unauthorized", "invalid command"} <= reasons, reasons
        assert any("replayed" in r["error"] for r in by_id["the-pause"] if not r["ok"])
        assert not d.named("command.done") or all(
            e["cmd"] == "pause" for e in d.named("command.done")
        )

        # Still responsive: a signed status answers, the bot is still paused, and no order went
        # out since the pause (a few simulated minutes, with the market moving).
        status = signed({"id": "after-flood", "cmd": "status"}, SECRET, now_ms())
        operator.publish("cmd", status)
        r = operator.reply("after-flood")
        assert r["ok"] and r["result"]["trading_state"] == "paused", r
        assert d.count("order.sent") == sent_after_pause
        assert d.count("config.set") == 0
        # And a valid signed resume still works: orders flow again.
        resume = signed({"id": "resume-1", "cmd": "resume"}, SECRET, now_ms())
        operator.publish("cmd", resume)
        assert operator.reply("resume-1")["ok"]
        code = d.stop()
    finally:
        d.kill()
    assert code == 0, d.stderr
    assert d.count("order.sent") >= sent_after_pause
    no_traceback(d)


# --- broker restart -----------------------------------------------------------------------------


def test_broker_restart_during_run(tmp_path: Path) -> None:
    # The broker persists sessions so that the operator's subscription survives the restart and
    # the events the bot flushes on reconnect reach it even if it reconnects after the bot.
    bdir = tmp_path / "broker"
    bdir.mkdir()
    broker = Broker(
        bdir, extra_conf=f"allow_anonymous true\npersistence true\npersistence_location {bdir}/\n"
    )
    broker.start()
    operator = Operator(broker.port, persistent=True)
    # A busier market (lower band, more jumps) so that hedges keep coming during the outage.
    cfg = write_config(tmp_path, broker.port, band=0.15, jumps=400.0, vol=1.2)
    d = start_daemon(cfg)
    try:
        d.wait_event("mqtt.connected")
        d.wait_event("hedge.settled")
        operator.state_after(now_ms())

        # Stopped (gracefully, so it saves the operator's session) and started on the same port.
        broker.stop(graceful=True)
        down_at = now_ms()
        d.wait_event("mqtt.disconnected")
        sent0, decisions0 = d.count("order.sent"), d.count("hedge.decision")
        # Hedging goes on without the broker: new decisions and orders during the outage.
        wait_until(
            lambda: d.count("order.sent") >= sent0 + 2 and d.count("hedge.decision") > decisions0,
            120,
            "orders while the broker is down",
        )
        d.assert_alive()

        broker.start()  # same port
        up_at = now_ms()
        # Telemetry resumes: reconnected, `online` again, fresh state, new events.
        d.wait_event("mqtt.connected", lambda e: e["timestamp"] > _iso(down_at), timeout=60)
        wait_until(lambda: operator.snapshot("status")[-1:] == ["online"], 60, "online again")
        st = operator.state_after(up_at, lambda s: s["mqtt"]["reconnects"] >= 1, timeout=60)
        assert st["mqtt"]["connected"]
        n_events = len(operator.snapshot("events"))
        wait_until(lambda: len(operator.snapshot("events")) > n_events, 60, "events again")
        # The hedges sent during the outage were queued and delivered after it.
        outage_ids = {
            e["client_id"]
            for e in d.named("order.sent")
            if _iso(down_at) < e["timestamp"] < _iso(up_at)
        }
        assert outage_ids
        wait_until(
            lambda: (
                outage_ids
                <= {
                    e.get("client_id")
                    for e in operator.snapshot("events")
                    if e["event"] == "order.sent"
                }
            ),
            60,
            "queued events delivered",
        )
        # Commands work again.
        assert operator.call("status")["ok"]
        # Hedging continued after the restart too.
        sent1 = d.count("order.sent")
        wait_until(lambda: d.count("order.sent") > sent1, 120, "orders after the restart")
        code = d.stop()
        wait_until(lambda: operator.snapshot("status")[-1:] == ["offline"], 30, "offline at exit")
    finally:
        d.kill()
        operator.close()
        broker.stop()
    assert code == 0, d.stderr
    no_traceback(d)
    assert not [e for e in d.events if e.get("level") in ("error", "critical")], [
        e for e in d.events if e.get("level") in ("error", "critical")
    ]
    assert len(d.named("daemon.summary")) == 1


def _iso(ms: int) -> str:
    """structlog's ISO timestamp for epoch ms, for comparing log lines with wall time."""
    from datetime import UTC, datetime

    return datetime.fromtimestamp(ms / 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


# --- external positions -------------------------------------------------------------------------


def test_external_positions_change_the_hedge_until_they_expire(
    tmp_path: Path, broker: Broker, operator: Operator
) -> None:
    # A quiet market: every large order below comes from the external position.
    cfg = write_config(tmp_path, broker.port, vol=0.3, jumps=0.0)
    d = start_daemon(cfg)
    try:
        d.wait_event("hedge.settled")
        idle(operator, now_ms())
        before = {e["client_id"] for e in d.named("order.sent")}

        # Refused positions: unknown underlying, unlisted symbol without a delta, bad payload.
        operator.publish(
            "positions/in",
            {
                "source": "otc",
                "symbol": "ETH-X",
                "underlying": "ETH",
                "qty": 1,
                "delta_coin": 5,
                "ttl_s": 60,
            },
        )
        operator.publish(
            "positions/in",
            {"source": "otc", "symbol": "NOT-LISTED", "underlying": "BTC", "qty": 3, "ttl_s": 60},
        )
        operator.publish("positions/in", b'{"source": "otc", "qty": "lots"}')
        wait_until(lambda: d.count("position.rejected") >= 3, 60, "three rejected positions")
        reasons = " | ".join(e["reason"] for e in d.named("position.rejected"))
        assert "not hedged" in reasons and "not listed" in reasons and "invalid position" in reasons
        assert {e["event"] for e in operator.snapshot("events")} >= {"position.rejected"}

        # +25 BTC of delta held elsewhere for 10 s: the bot sells about 25 BTC of perp.
        operator.publish(
            "positions/in",
            {
                "source": "otc-desk",
                "symbol": "BTC-FWD-OTC",
                "underlying": "BTC",
                "qty": 25,
                "delta_coin": 25.0,
                "ttl_s": 10,
            },
        )
        d.wait_event("external.position", lambda e: e["source"] == "otc-desk")

        def sold() -> float:
            return sum(  # type: ignore[no-any-return]
                e["amount"]
                for e in d.named("order.sent")
                if e["client_id"] not in before and e["side"] == "sell"
            )

        wait_until(lambda: sold() >= 24.0, 60, "a sell hedge against the external delta")
        st = operator.state_after(now_ms(), lambda s: s["external_positions"] == 1)
        assert abs(st["underlyings"]["BTC"]["delta_coin"]) < 1.0  # hedged, external included

        # After expiry it no longer counts: the bot buys the hedge back.
        after = {e["client_id"] for e in d.named("order.sent")}
        expired = d.wait_event("external.expired", lambda e: e["source"] == "otc-desk")
        assert expired["symbol"] == "BTC-FWD-OTC"

        def bought() -> float:
            return sum(  # type: ignore[no-any-return]
                e["amount"]
                for e in d.named("order.sent")
                if e["client_id"] not in after and e["side"] == "buy"
            )

        wait_until(lambda: bought() >= 24.0, 60, "the hedge bought back after expiry")
        st = operator.state_after(
            now_ms(), lambda s: s["external_positions"] == 0 and s["open_orders"] == []
        )
        assert abs(st["underlyings"]["BTC"]["delta_coin"]) < 1.0
        code = d.stop()
    finally:
        d.kill()
    assert code == 0, d.stderr
    no_traceback(d)


# --- no broker at all ---------------------------------------------------------------------------


def test_no_broker_hedges_anyway_and_stops_promptly(tmp_path: Path) -> None:
    from tests.test_mqtt_broker import free_port

    cfg = write_config(tmp_path, free_port())  # nothing listens there
    d = start_daemon(cfg)
    try:
        d.wait_event("mqtt.disconnected")
        d.wait_event("hedge.settled")
        t0 = time.monotonic()
        code = d.stop()
        # Shutdown does not wait for a broker that is not there.
        assert time.monotonic() - t0 < 30
    finally:
        d.kill()
    assert code == 0, d.stderr
    assert len(d.named("daemon.summary")) == 1
    assert not d.named("mqtt.connected")
    no_traceback(d)
