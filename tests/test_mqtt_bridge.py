"""MqttBridge against a real Mosquitto: status and last will, state, events, every command,
hostile payloads, external positions, broker restarts. The Controller is a small recording fake;
the broker is real."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import aiomqtt
import pytest
from pydantic import SecretStr

from bot.config_ops import MqttConfig
from bot.control import CommandError
from bot.events import Event
from bot.io.command_auth import signed
from bot.io.mqtt import MqttBridge
from bot.io.mqtt_schema_in import ExternalPositionIn
from bot.io.mqtt_schema_out import CommandReply, StateMessage

try:
    from tests.test_mqtt_broker import ROOT, Broker, mqtt_broker, read_retained
except ImportError:  # tests/ is not a package
    from test_mqtt_broker import (  # type: ignore[no-redef]
        ROOT,
        Broker,
        mqtt_broker,
        read_retained,
    )

__all__ = ["mqtt_broker"]  # the fixture, imported for pytest

BOT = "t1"
SECRET = "s3cret-for-tests"
pytestmark = pytest.mark.slow


class FakeController:
    """Implements bot.control.Controller; records every call."""

    def __init__(self) -> None:
        self.calls: list[tuple[Any, ...]] = []
        self.trading_state = "active"
        self.settings: dict[str, Any] = {"hedge.BTC.policy.band": 0.1}
        self.flatten_delay_s = 0.05

    def pause(self) -> dict[str, Any]:
        self.calls.append(("pause",))
        self.trading_state = "paused"
        return {"trading_state": self.trading_state}

    def resume(self) -> dict[str, Any]:
        self.calls.append(("resume",))
        self.trading_state = "active"
        return {"trading_state": self.trading_state}

    def hedge_now(self, underlying: str | None) -> dict[str, Any]:
        self.calls.append(("hedge_now", underlying))
        return {"underlyings": [underlying] if underlying else ["BTC", "ETH"]}

    async def flatten(self, underlying: str | None) -> dict[str, Any]:
        self.calls.append(("flatten", underlying))
        await asyncio.sleep(self.flatten_delay_s)
        return {"orders": 1}

    def set_setting(self, path: str, value: Any) -> dict[str, Any]:
        self.calls.append(("set", path, value))
        if path not in self.settings:
            raise CommandError(f"{path}: unknown setting")
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise CommandError(f"{path}: Input should be greater than 0 (got {value!r})")
        old = self.settings[path]
        self.settings[path] = value
        return {"path": path, "old": old, "new": value}

    def reload(self) -> dict[str, Any]:
        self.calls.append(("reload",))
        return {"reloaded": True}

    def set_trading_state(self, state: str, reason: str) -> dict[str, Any]:
        self.calls.append(("trading_state", state, reason))
        self.trading_state = state
        return {"trading_state": state, "reason": reason}

    def state(self) -> dict[str, Any]:
        return {
            "mode": "paper",
            "trading_state": self.trading_state,
            "accounts": {"sim": {"exchange": "sim", "mode": "paper"}},
            "underlyings": {
                "BTC": {
                    "delta_coin": 0.05,
                    "delta_usd": 3000.0,
                    "target": 0.0,
                    "band": self.settings["hedge.BTC.policy.band"],
                    "unit": "coin",
                }
            },
            "feeds": {"sim": {"ok": True, "age_ms": 120}},
            "open_orders": 0,
        }


def make_config(broker: Broker, **kw: Any) -> MqttConfig:
    base: dict[str, Any] = {
        "enabled": True,
        "host": broker.host,
        "port": broker.port,
        "keepalive": 5,
        "reconnect_min_s": 0.05,
        "reconnect_max_s": 0.3,
        "state_interval_s": 0.5,
    }
    base.update(kw)
    return MqttConfig(**base)


async def until(cond: Callable[[], bool], wait_s: float = 5.0, what: str = "condition") -> None:
    deadline = time.monotonic() + wait_s
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Running:
    def __init__(self, bridge: MqttBridge, controller: FakeController, task: asyncio.Task[None]):
        self.bridge = bridge
        self.controller = controller
        self.task = task
        self.positions: list[ExternalPositionIn] = []


@pytest.fixture
async def start_bridge(
    mqtt_broker: Broker,
) -> AsyncIterator[Callable[..., Awaitable[Running]]]:
    started: list[Running] = []

    async def start(**kw: Any) -> Running:
        controller = FakeController()
        positions: list[ExternalPositionIn] = []
        bridge = MqttBridge(
            make_config(mqtt_broker, **kw),
            BOT,
            controller,
            on_external_position=positions.append,
        )
        task = asyncio.create_task(bridge.run())
        r = Running(bridge, controller, task)
        r.positions = positions
        started.append(r)
        await until(lambda: bridge.connected, what="bridge connected")
        return r

    yield start
    for r in started:
        await r.bridge.close()
        if not r.task.done():
            r.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await r.task


class Operator:
    """A test MQTT client: publishes commands, collects replies and events of bot t1."""

    def __init__(self, broker: Broker) -> None:
        self.broker = broker
        self.replies: list[dict[str, Any]] = []
        self.events: list[dict[str, Any]] = []
        self.states: list[dict[str, Any]] = []
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None

    async def __aenter__(self) -> Operator:
        self._client = aiomqtt.Client(self.broker.host, self.broker.port, timeout=10)
        await self._client.__aenter__()
        for sub in ("cmd/reply", "events", "state"):
            await self._client.subscribe(f"hedgebot/{BOT}/{sub}", qos=1)
        self._task = asyncio.create_task(self._collect())
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None and self._client is not None
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, aiomqtt.MqttError):
            await self._task
        with contextlib.suppress(aiomqtt.MqttError):
            await self._client.__aexit__(None, None, None)

    async def _collect(self) -> None:
        assert self._client is not None
        async for m in self._client.messages:
            doc = json.loads(bytes(m.payload))  # type: ignore[arg-type]
            if m.topic.value.endswith("/cmd/reply"):
                self.replies.append(doc)
            elif m.topic.value.endswith("/events"):
                self.events.append(doc)
            else:
                self.states.append(doc)

    async def send(self, payload: dict[str, Any] | bytes, topic: str = "cmd", **kw: Any) -> None:
        assert self._client is not None
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        await self._client.publish(f"hedgebot/{BOT}/{topic}", body, qos=1, **kw)

    def reply(self, cmd_id: str) -> dict[str, Any]:
        found = [r for r in self.replies if r["id"] == cmd_id]
        assert len(found) == 1, (cmd_id, found)
        return found[0]

    async def call(self, payload: dict[str, Any], wait_s: float = 5.0) -> dict[str, Any]:
        await self.send(payload)
        cmd_id = payload["id"]
        await until(lambda: any(r["id"] == cmd_id for r in self.replies), wait_s, f"reply {cmd_id}")
        return self.reply(cmd_id)


# --- status, last will, state, events -----------------------------------------------------------


async def test_status_online_state_retained_and_offline_on_close(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    r = await start_bridge()
    h, p = mqtt_broker.host, mqtt_broker.port
    assert await read_retained(h, p, f"hedgebot/{BOT}/status") == b"online"
    raw = await read_retained(h, p, f"hedgebot/{BOT}/state")
    assert raw is not None
    state = StateMessage.model_validate_json(raw)
    assert state.bot_id == BOT
    assert state.trading_state == "active"
    assert state.underlyings["BTC"].band == 0.1
    assert state.mqtt is not None and state.mqtt.connected and state.mqtt.events_dropped == 0
    await r.bridge.close()
    await asyncio.wait_for(r.task, 5)
    assert await read_retained(h, p, f"hedgebot/{BOT}/status") == b"offline"


async def test_state_republished_periodically(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        await start_bridge(state_interval_s=0.2)
        await until(lambda: len(op.states) >= 3, 5, "three state messages")
    ts = [s["ts_ms"] for s in op.states]
    assert ts == sorted(ts)


async def test_events_published_in_order(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge()
        for i in range(200):
            r.bridge.emit(Event("decision", "hedge.decided", 1_000 + i, {"seq": i, "x": 1.5}))
        await until(lambda: len(op.events) >= 200, 10, "200 events")
    assert [e["seq"] for e in op.events] == list(range(200))
    assert op.events[0] == {
        "bot_id": BOT,
        "kind": "decision",
        "event": "hedge.decided",
        "ts_ms": 1000,
        "seq": 0,
        "x": 1.5,
    }


async def test_emit_never_raises_on_odd_data(
    start_bridge: Callable[..., Awaitable[Running]],
) -> None:
    r = await start_bridge()
    r.bridge.emit(Event("alert", "odd", 1, {"nan": float("nan"), "obj": object(), "p": Path("/x")}))
    assert r.bridge.events_queued <= 1


KILL_SCRIPT = """
import asyncio, sys
from bot.config_ops import MqttConfig
from bot.io.mqtt import MqttBridge

class C:
    def pause(self): return {}
    def resume(self): return {}
    def hedge_now(self, u): return {}
    async def flatten(self, u): return {}
    def set_setting(self, p, v): return {}
    def reload(self): return {}
    def state(self): return {"mode": "paper", "trading_state": "active"}

cfg = MqttConfig(enabled=True, host="127.0.0.1", port=int(sys.argv[1]), keepalive=5)
asyncio.run(MqttBridge(cfg, "killme", C()).run())
"""


async def test_last_will_offline_when_process_killed(mqtt_broker: Broker) -> None:
    h, p = mqtt_broker.host, mqtt_broker.port
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = await asyncio.create_subprocess_exec(sys.executable, "-c", KILL_SCRIPT, str(p), env=env)
    try:
        deadline = time.monotonic() + 20
        while await read_retained(h, p, "hedgebot/killme/status", 0.3) != b"online":
            assert proc.returncode is None, "bridge process died"
            assert time.monotonic() < deadline, "bridge never said online"
        assert await read_retained(h, p, "hedgebot/killme/state") is not None
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 5)
        deadline = time.monotonic() + 10
        while await read_retained(h, p, "hedgebot/killme/status", 0.3) != b"offline":
            assert time.monotonic() < deadline, "last will never published"
    finally:
        if proc.returncode is None:
            proc.kill()
            await asyncio.wait_for(proc.wait(), 5)


# --- commands -----------------------------------------------------------------------------------


async def test_each_command_dispatched_and_replied(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge()
        c = r.controller
        rep = await op.call({"id": "c1", "cmd": "pause"})
        assert rep["ok"] and rep["result"] == {"trading_state": "paused"} and rep["cmd"] == "pause"
        CommandReply.model_validate(rep)
        assert (await op.call({"id": "c2", "cmd": "resume"}))["ok"]
        assert (await op.call({"id": "c3", "cmd": "hedge-now", "args": {"underlying": "BTC"}}))[
            "ok"
        ]
        assert (await op.call({"id": "c4", "cmd": "hedge-now"}))["result"] == {
            "underlyings": ["BTC", "ETH"]
        }
        rep = await op.call(
            {"id": "c5", "cmd": "flatten", "args": {"underlying": "BTC", "confirm": True}}
        )
        assert rep["ok"] and rep["result"] == {"orders": 1}
        assert (await op.call({"id": "c6", "cmd": "flatten", "args": {"confirm": "FLATTEN"}}))["ok"]
        rep = await op.call(
            {"id": "c7", "cmd": "set", "args": {"path": "hedge.BTC.policy.band", "value": 0.25}}
        )
        assert rep["ok"] and rep["result"]["new"] == 0.25
        assert (await op.call({"id": "c8", "cmd": "reload"}))["ok"]
        rep = await op.call({"id": "c9", "cmd": "status"})
        assert rep["ok"] and rep["result"]["underlyings"]["BTC"]["band"] == 0.25
        assert rep["result"]["bot_id"] == BOT
        assert c.calls == [
            ("pause",),
            ("resume",),
            ("hedge_now", "BTC"),
            ("hedge_now", None),
            ("flatten", "BTC"),
            ("flatten", None),
            ("set", "hedge.BTC.policy.band", 0.25),
            ("reload",),
        ]
        # the changed setting shows in the published state, and each command is an event
        await until(
            lambda: any(s["underlyings"]["BTC"]["band"] == 0.25 for s in op.states), 3, "state"
        )
        await until(lambda: len([e for e in op.events if e["event"] == "command.done"]) == 9)


async def test_halt_and_set_trading_state(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge()
        rep = await op.call({"id": "h1", "cmd": "halt"})
        assert rep["ok"] and rep["result"] == {"trading_state": "halted", "reason": "operator"}
        rep = await op.call({"id": "h2", "cmd": "halt", "args": {"reason": "venue down"}})
        assert rep["ok"] and rep["result"]["reason"] == "operator: venue down"
        # the state published right after shows the halt
        await until(lambda: any(s["trading_state"] == "halted" for s in op.states), 3, "state")
        rep = await op.call({"id": "h3", "cmd": "set-trading-state", "args": {"state": "x"}})
        assert not rep["ok"] and "state" in rep["error"]
        rep = await op.call(
            {"id": "h4", "cmd": "set-trading-state", "args": {"state": "reducing_only"}}
        )
        assert rep["ok"] and rep["result"]["trading_state"] == "reducing_only"
        assert r.controller.calls == [
            ("trading_state", "halted", "operator"),
            ("trading_state", "halted", "operator: venue down"),
            ("trading_state", "reducing_only", "operator"),
        ]


async def test_close_flushes_queued_events_and_state_before_offline(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge(state_interval_s=60)
        await until(lambda: len(op.states) >= 1, 5, "first state")
        r.controller.trading_state = "stopped"
        for i in range(300):
            r.bridge.emit(Event("state", "final", 1_000 + i, {"seq": i}))
        await r.bridge.close()
        await asyncio.wait_for(r.task, 5)
        await until(lambda: len([e for e in op.events if e["event"] == "final"]) == 300, 5)
        await until(lambda: op.states[-1]["trading_state"] == "stopped", 5, "final state")
    assert await read_retained(mqtt_broker.host, mqtt_broker.port, f"hedgebot/{BOT}/status") == (
        b"offline"
    )


async def test_flatten_does_not_block_other_commands(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge()
        r.controller.flatten_delay_s = 1.0
        await op.send({"id": "f", "cmd": "flatten", "args": {"confirm": True}})
        rep = await op.call({"id": "p", "cmd": "pause"}, wait_s=0.8)
        assert rep["ok"]
        assert not any(x["id"] == "f" for x in op.replies)
        await until(lambda: any(x["id"] == "f" for x in op.replies), 3, "flatten reply")


async def test_set_errors_replied_and_change_nothing(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge()
        rep = await op.call(
            {"id": "s1", "cmd": "set", "args": {"path": "hedge.BTC.policy.band", "value": -1}}
        )
        assert rep == {
            "id": "s1",
            "ok": False,
            "cmd": "set",
            "error": "hedge.BTC.policy.band: Input should be greater than 0 (got -1)",
            "ts_ms": rep["ts_ms"],
        }
        rep = await op.call({"id": "s2", "cmd": "set", "args": {"path": "nope.x", "value": 1}})
        assert not rep["ok"] and "unknown setting" in rep["error"]
        assert r.controller.settings == {"hedge.BTC.policy.band": 0.1}
        # secrets are never settable over MQTT: refused before the controller sees them
        n = len(r.controller.calls)
        rep = await op.call(
            {"id": "s3", "cmd": "set", "args": {"path": "accounts.x.api_key", "value": "k"}}
        )
        assert not rep["ok"] and "secret" in rep["error"]
        assert len(r.controller.calls) == n
        await until(lambda: len([e for e in op.events if e["kind"] == "reject"]) == 3)


async def test_controller_crash_is_an_error_reply(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge()

        def boom() -> dict[str, Any]:
            raise ZeroDivisionError("oops")

        r.controller.reload = boom  # type: ignore[method-assign]
        rep = await op.call({"id": "x", "cmd": "reload"})
        assert not rep["ok"] and rep["error"] == "internal error: ZeroDivisionError: oops"
        assert (await op.call({"id": "y", "cmd": "pause"}))["ok"]

        def cyclic() -> dict[str, Any]:
            d: dict[str, Any] = {}
            d["self"] = d
            return d

        r.controller.resume = cyclic  # type: ignore[method-assign]
        r.controller.state = cyclic  # type: ignore[method-assign]
        rep = await op.call({"id": "z", "cmd": "resume"})
        assert not rep["ok"] and "not serializable" in rep["error"]
        r.bridge.emit(Event("alert", "cyclic", 1, cyclic()))
        await asyncio.sleep(0.3)  # state publishing fails quietly too
        assert (await op.call({"id": "w", "cmd": "hedge-now"}))["ok"]
    assert not r.task.done() and r.bridge.connected


def _hostile_payloads(now_ms: int) -> tuple[list[tuple[bytes, dict[str, Any]]], dict[str, int]]:
    """1,000 bad command payloads, each with publish options, and how many replies each id must
    get. The first one is the valid signed original that the replays copy."""
    good = signed({"id": "orig", "cmd": "pause"}, SECRET, now_ms)
    out: list[tuple[bytes, dict[str, Any]]] = []
    expect: dict[str, int] = {}

    def add(payload: bytes | dict[str, Any], cmd_id: str | None, **opts: Any) -> None:
        body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        out.append((body, opts))
        if cmd_id is not None:
            expect[cmd_id] = expect.get(cmd_id, 0) + 1

    i = 0
    while len(out) < 1000:
        k = i % 20
        cid = f"bad-{i}"
        if k == 0:
            add(b"{not json", None)
        elif k == 1:
            add(b"\xff\xfe\x00garbage", None)
        elif k == 2:
            add(b"[1, 2, 3]", None)
        elif k == 3:
            add(signed({"id": cid, "cmd": "explode"}, SECRET, now_ms), cid)
        elif k == 4:
            add(signed({"id": cid, "cmd": "flatten", "args": {}}, SECRET, now_ms), cid)
        elif k == 5:
            add(signed({"id": cid, "cmd": "flatten", "args": {"confirm": 1}}, SECRET, now_ms), cid)
        elif k == 6:
            add(signed({"id": cid, "cmd": "pause", "extra": 1}, SECRET, now_ms), cid)
        elif k == 7:
            big = {"id": cid, "cmd": "set", "args": {"path": "a.b", "value": "x" * 70_000}}
            add(signed(big, SECRET, now_ms), cid)
        elif k == 8:  # wrong secret
            add(signed({"id": cid, "cmd": "pause"}, "wrong", now_ms), cid)
        elif k == 9:  # stale
            add(signed({"id": cid, "cmd": "pause"}, SECRET, now_ms - 120_000), cid)
        elif k == 10:  # no signature
            add({"id": cid, "cmd": "pause", "ts": now_ms}, cid)
        elif k == 11:  # signed, then tampered
            cmd = signed({"id": cid, "cmd": "hedge-now"}, SECRET, now_ms)
            cmd["args"] = {"underlying": "ETH"}
            add(cmd, cid)
        elif k == 12:  # replay of the accepted original
            add(good, "orig")
        elif k == 13:
            add({"cmd": "pause"}, None)  # no id: nobody to reply to
        elif k == 14:
            add({"id": 17 + i, "cmd": "pause"}, None)  # integer id: replied, counted below
            expect[str(17 + i)] = 1
        elif k == 15:
            add(
                signed(
                    {"id": cid, "cmd": "set", "args": {"path": "bad path!", "value": 1}},
                    SECRET,
                    now_ms,
                ),
                cid,
            )
        elif k == 16:  # a signature that is not even hex
            add({**signed({"id": cid, "cmd": "pause"}, SECRET, now_ms), "sig": "zz"}, cid)
        elif k == 17:
            add(b"[" * 100_000, None)  # deep nesting, oversized
        elif k == 18:
            add(b"", None)
        else:
            add(signed({"id": cid, "cmd": "pause", "ts": "now"}, SECRET, now_ms), cid)
        i += 1
    return out, expect


async def test_thousand_hostile_payloads(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge(command_secret=SecretStr(SECRET), command_max_age_s=30)
        now = int(time.time() * 1000)
        payloads, expect = _hostile_payloads(now)
        assert len(payloads) == 1000
        rep = await op.call(signed({"id": "orig", "cmd": "pause"}, SECRET, now))
        assert rep["ok"]
        assert r.controller.calls == [("pause",)]
        for body, opts in payloads:
            await op.send(body, **opts)
        expect["orig"] += 1  # the accepted original
        n_expected = sum(expect.values())
        await until(lambda: len(op.replies) >= n_expected, 30, f"{n_expected} replies")
        await asyncio.sleep(0.3)  # and no more than that
        got: dict[str, int] = {}
        for rep in op.replies:
            got[str(rep["id"])] = got.get(str(rep["id"]), 0) + 1
            if rep["id"] != "orig":
                assert rep["ok"] is False and rep["error"], rep
        assert got == expect
        # the controller never saw any of them
        assert r.controller.calls == [("pause",)]
        assert not r.task.done() and r.bridge.connected
        assert r.bridge.commands_rejected == 1000
        errors = {rep["error"].split(":")[0] for rep in op.replies if not rep["ok"]}
        assert {"invalid command", "unauthorized", "payload too large"} <= errors
        assert any("replayed" in rep.get("error", "") for rep in op.replies)
        # and it still works
        rep = await op.call(
            signed({"id": "after", "cmd": "resume"}, SECRET, int(time.time() * 1e3))
        )
        assert rep["ok"] and r.controller.calls == [("pause",), ("resume",)]
        await until(
            lambda: len([e for e in op.events if e["event"] == "command.rejected"]) == 1000,
            10,
            "1000 reject events",
        )


async def test_duplicate_id_without_secret_runs_once(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge()
        await op.send({"id": "d", "cmd": "hedge-now"})
        await op.send({"id": "d", "cmd": "hedge-now"})
        await until(lambda: len(op.replies) == 2)
        assert [x["ok"] for x in op.replies] == [True, False]
        assert "duplicate" in op.replies[1]["error"]
        assert r.controller.calls == [("hedge_now", None)]


async def test_retained_command_refused_on_subscribe(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    # A retained command would run again on every reconnect. Live subscribers cannot tell a
    # retained publish apart (MQTT clears the flag on live delivery), but on (re)subscribe the
    # broker flags it, and that is when it would replay.
    async with Operator(mqtt_broker) as op:
        await op.send({"id": "r1", "cmd": "pause"}, retain=True)
        r = await start_bridge()
        await until(lambda: len(op.replies) == 1)
        assert not op.replies[0]["ok"] and "retained" in op.replies[0]["error"]
        assert r.controller.calls == []
        await op.send(b"", retain=True)  # clear it


# --- external positions -------------------------------------------------------------------------


async def test_refused_external_position_is_a_rejection(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        r = await start_bridge()

        def refuse(p: ExternalPositionIn) -> None:
            raise CommandError(f"underlying {p.underlying!r} is not hedged by this bot")

        r.bridge._on_position = refuse
        pos = {"source": "otc", "symbol": "X", "underlying": "DOGE", "qty": 1, "ttl_s": 60}
        await op.send(pos, topic="positions/in")
        await until(lambda: any(e["event"] == "position.rejected" for e in op.events), 5)
        (e,) = [e for e in op.events if e["event"] == "position.rejected"]
        assert e["kind"] == "reject" and e["source"] == "otc" and "DOGE" in e["reason"]
        assert not any(e["event"] == "position.callback_failed" for e in op.events)


async def test_external_positions_handed_over(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    async with Operator(mqtt_broker) as op:
        now = int(time.time() * 1000)
        pos = {"source": "otc", "symbol": "BTC-OTC", "underlying": "BTC", "qty": 2.5}
        # retained before the bridge subscribes, so it arrives flagged as retained: with a ttl
        # it would never expire (the ttl restarts at every delivery)
        await op.send({**pos, "ttl_s": 60}, topic="positions/in", retain=True)
        r = await start_bridge()
        await op.send({**pos, "ttl_s": 60}, topic="positions/in")
        await op.send(
            {**pos, "expires_at_ms": now + 3_600_000, "delta_coin": 1.2}, topic="positions/in"
        )
        await op.send({**pos, "ttl_s": 60, "bogus": 1}, topic="positions/in")
        await op.send({**pos}, topic="positions/in")  # no expiry
        await op.send({**pos, "expires_at_ms": now - 1000}, topic="positions/in")
        await op.send(b"nope", topic="positions/in")
        await until(lambda: len([e for e in op.events if e["kind"] == "reject"]) == 5)
        assert len(r.positions) == 2
        a, b = r.positions
        assert a.ttl_s == 60 and a.expires_at_ms is not None
        assert abs(a.expires_at_ms - (now + 60_000)) < 5_000
        assert b.expires_at_ms == now + 3_600_000 and b.delta_coin == 1.2
        reasons = [e["reason"] for e in op.events if e["kind"] == "reject"]
        assert any("expired" in x for x in reasons)
        assert any("retained" in x for x in reasons)
    # clean the retained message so it does not linger for other tests on this broker
    async with aiomqtt.Client(mqtt_broker.host, mqtt_broker.port) as c:
        await c.publish(f"hedgebot/{BOT}/positions/in", b"", qos=1, retain=True)


# --- broker outages -----------------------------------------------------------------------------


async def test_broker_down_at_start_then_up(tmp_path: Path) -> None:
    broker = Broker(tmp_path)  # not started yet
    bridge = MqttBridge(make_config(broker), BOT, FakeController())
    task = asyncio.create_task(bridge.run())
    try:
        await asyncio.sleep(0.5)
        assert not bridge.connected and not task.done()
        bridge.emit(Event("alert", "early", 1))
        broker.start()
        await until(lambda: bridge.connected, 5, "connected after broker start")
        assert await read_retained(broker.host, broker.port, f"hedgebot/{BOT}/status") == b"online"
    finally:
        await bridge.close()
        broker.stop()
        await asyncio.wait_for(task, 5)


async def test_broker_restart_reconnects_republishes_and_counts_drops(tmp_path: Path) -> None:
    # Persistence and a persistent operator session: the operator receives, after the restart,
    # what the bridge published while the operator was not yet reconnected.
    broker = Broker(
        tmp_path,
        extra_conf=f"allow_anonymous true\npersistence true\npersistence_location {tmp_path}/\n",
    )
    broker.start()
    controller = FakeController()
    bridge = MqttBridge(
        make_config(broker, event_queue_size=50, reconnect_min_s=0.1, reconnect_max_s=0.5),
        BOT,
        controller,
    )
    task = asyncio.create_task(bridge.run())
    ticks: list[float] = []

    async def engine() -> None:  # stands in for the hedging loop: it must never stall
        while True:
            ticks.append(time.monotonic())
            await asyncio.sleep(0.01)

    engine_task = asyncio.create_task(engine())
    received: list[tuple[str, dict[str, Any] | bytes]] = []

    def sub_client() -> aiomqtt.Client:
        return aiomqtt.Client(
            broker.host, broker.port, identifier="op-persistent", clean_session=False
        )

    async def collect(c: aiomqtt.Client, stop_after_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(stop_after_s):
                async for m in c.messages:
                    body = bytes(m.payload)  # type: ignore[arg-type]
                    doc = body if m.topic.value.endswith("/status") else json.loads(body)
                    received.append((m.topic.value.rsplit("/", 1)[-1], doc))

    try:
        await until(lambda: bridge.connected, 5, "connected")
        async with sub_client() as c:
            await c.subscribe(f"hedgebot/{BOT}/#", qos=1)
            bridge.emit(Event("fill", "before", 1, {"seq": -1}))
            await collect(c, 0.5)
        assert any(t == "events" and d["event"] == "before" for t, d in received)  # type: ignore[index]
        received.clear()

        # broker driven from a thread: this loop plays the engine and must not stall
        await asyncio.to_thread(broker.stop, graceful=True)
        await until(lambda: not bridge.connected, 5, "bridge noticed the outage")
        for i in range(80):  # the queue holds 50: the 30 oldest are dropped
            bridge.emit(Event("fill", "during", 1000 + i, {"seq": i}))
        assert bridge.events_dropped == 30 and bridge.events_queued == 50
        await asyncio.sleep(1.0)  # retrying quietly meanwhile
        assert not task.done()
        await asyncio.to_thread(broker.start)
        await until(lambda: bridge.connected, 10, "reconnected")
        await until(lambda: bridge.events_queued == 0, 10, "queue drained")
        async with sub_client() as c:
            await c.subscribe(f"hedgebot/{BOT}/#", qos=1)
            await collect(c, 1.0)
    finally:
        engine_task.cancel()
        await bridge.close()
        await asyncio.wait_for(task, 5)
        broker.stop()

    events = [d for t, d in received if t == "events"]
    seqs = [e["seq"] for e in events if e["event"] == "during"]  # type: ignore[index]
    assert seqs == list(range(30, 80))
    alerts = [e for e in events if e["event"] == "mqtt.events_dropped"]  # type: ignore[index]
    assert len(alerts) == 1 and alerts[0]["dropped"] == 30 and alerts[0]["dropped_total"] == 30  # type: ignore[index]
    states = [d for t, d in received if t == "state"]
    assert states, "state republished after reconnect"
    last = StateMessage.model_validate(states[-1])
    assert last.mqtt is not None and last.mqtt.reconnects == 1 and last.mqtt.events_dropped == 30
    assert b"online" in [d for t, d in received if t == "status"]
    assert bridge.reconnects == 1
    gaps = [b - a for a, b in itertools.pairwise(ticks)]
    assert max(gaps) < 0.25, f"engine loop stalled {max(gaps):.3f}s"


async def test_two_daemons_under_one_bot_id_both_alert(
    mqtt_broker: Broker, start_bridge: Callable[..., Awaitable[Running]]
) -> None:
    """A second daemon with the same bot_id: both would obey every command. Each alerts once,
    naming the other; a restart of one daemon (its previous marker retained) alerts nobody."""
    async with Operator(mqtt_broker) as op:
        first = await start_bridge()
        await asyncio.sleep(0.3)
        assert not [e for e in op.events if e["event"] == "mqtt.bot_id_in_use"]
        await first.bridge.close()
        await asyncio.wait_for(first.task, 5)
        again = await start_bridge()  # a restart: the retained marker is the last run's
        await asyncio.sleep(0.5)
        assert not [e for e in op.events if e["event"] == "mqtt.bot_id_in_use"]
        await start_bridge()  # a twin
        await until(
            lambda: len([e for e in op.events if e["event"] == "mqtt.bot_id_in_use"]) >= 2,
            what="both daemons alert",
        )
        await asyncio.sleep(0.5)
        alerts = [e for e in op.events if e["event"] == "mqtt.bot_id_in_use"]
        assert len(alerts) == 2, alerts  # once each: the republished markers do not ping-pong
        assert {a["kind"] for a in alerts} == {"alert"}
        assert len({a["other_instance"] for a in alerts}) == 2
        assert again.bridge.connected
