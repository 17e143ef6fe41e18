"""`hedgebot status` / `hedgebot fleet` against retained states published by real bridges."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from typing import Any

import pytest
from rich.console import Console

from bot.events import Event
from bot.io.fleet import cmd_fleet, cmd_status
from bot.io.fleet_cli import register
from bot.io.fleet_state import BotView, apply_message
from bot.io.mqtt import MqttBridge

try:
    from tests.test_mqtt_bridge import FakeController, make_config, until
    from tests.test_mqtt_broker import Broker, mqtt_broker
except ImportError:  # tests/ is not a package
    from test_mqtt_bridge import FakeController, make_config, until  # type: ignore[no-redef]
    from test_mqtt_broker import Broker, mqtt_broker  # type: ignore[no-redef]

__all__ = ["mqtt_broker"]
pytestmark = pytest.mark.slow


class DriftingController(FakeController):
    """Beta: outside its band, one stale feed, two open orders, mixed account modes."""

    def state(self) -> dict[str, Any]:
        doc = super().state()
        doc.pop("mode")
        doc["accounts"] = {"a": {"mode": "testnet"}, "b": {"mode": "paper"}}
        doc["underlyings"]["BTC"].update(
            delta_coin=0.9123456789,
            delta_usd=54_000.123456,
            gamma_coin=-1.23456e-5,
            vega_usd=-150.456789,
            theta_usd=3650.004,
        )
        doc["underlyings"]["ETH"] = {
            "delta_coin": -2.0,
            "delta_usd": -6000.0,
            "target": 0.0,
            "band": 10_000.0,
            "unit": "usd",
        }
        doc["feeds"]["ws"] = {"ok": False, "age_ms": 60_000}
        doc["open_orders"] = [{"id": 1}, {"id": 2}]
        return doc


def _args(broker: Broker, **kw: Any) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="hedgebot")
    register(parser.add_subparsers(dest="command"))
    cmd = kw.pop("_cmd", "fleet")
    extra = [x for k, v in kw.items() for x in (f"--{k.replace('_', '-')}", str(v))]
    return parser.parse_args([cmd, "--host", broker.host, "--port", str(broker.port), *extra])


def _console() -> Console:
    return Console(record=True, width=220, force_terminal=False, color_system=None)


@pytest.fixture
async def two_bots(mqtt_broker: Broker) -> Any:
    """alpha ran and stopped (retained offline + its last state); beta is running."""
    alpha = MqttBridge(make_config(mqtt_broker), "alpha", FakeController())
    task_a = asyncio.create_task(alpha.run())
    await until(lambda: alpha.connected)
    alpha.request_state()
    await asyncio.sleep(0.3)
    await alpha.close()
    await task_a
    beta = MqttBridge(make_config(mqtt_broker), "beta", DriftingController())
    task_b = asyncio.create_task(beta.run())
    await until(lambda: beta.connected)
    beta.emit(Event("alert", "x", 1))
    await asyncio.sleep(0.3)
    yield
    await beta.close()
    with contextlib.suppress(asyncio.CancelledError):
        await task_b


async def test_fleet_table_from_two_bots(mqtt_broker: Broker, two_bots: None) -> None:
    console = _console()
    args = _args(mqtt_broker, timeout=1)
    assert args.func.target == "bot.io.fleet:cmd_fleet"
    rc = await asyncio.to_thread(args.func, args, console)
    out = console.export_text()
    assert rc == 0, out
    cells = [line.replace("│", " ") for line in out.splitlines()]
    lines = {c.split()[0]: c for c in cells if c.split()[:1] in (["alpha"], ["beta"])}
    # one row per bot (a bot's row may wrap into more lines for more underlyings)
    assert "offline" in lines["alpha"] and "paper" in lines["alpha"] and "active" in lines["alpha"]
    assert "BTC +0.0500 / $+3,000  (+0 ±0.1 coin)" in lines["alpha"]
    assert "online" in lines["beta"] and "paper,testnet" in lines["beta"]
    assert "BTC +0.9123 / $+54,000" in lines["beta"]
    assert "ETH -2.0000 / $-6,000  (+0 ±10000 usd)" in out
    assert "stale: ws" in lines["beta"]
    assert " 2 " in lines["beta"]  # open orders


async def test_status_of_one_bot(mqtt_broker: Broker, two_bots: None) -> None:
    console = _console()
    args = _args(mqtt_broker, _cmd="status", bot_id="beta", timeout=3)
    assert args.func.target == "bot.io.fleet:cmd_status"
    rc = await asyncio.to_thread(args.func, args, console)
    out = console.export_text()
    assert rc == 0, out
    assert "beta" in out and "online" in out and "alpha" not in out
    assert "events_dropped=0" in out
    # the greeks table: vega and theta beside delta and gamma, rounded to what they mean
    row = next(line for line in out.splitlines() if "BTC" in line and "+3,650.00" in line)
    assert "+0.912346" in row and "+54,000.12" in row and "-1.23e-05" in row
    assert "-150.46" in row


async def test_status_of_unknown_bot_exits_1(mqtt_broker: Broker, two_bots: None) -> None:
    console = _console()
    args = _args(mqtt_broker, _cmd="status", bot_id="nobody", timeout=0.5)
    rc = await asyncio.to_thread(args.func, args, console)
    assert rc == 1
    assert "no retained state for bot 'nobody'" in console.export_text()


def test_unreachable_broker_exits_1(tmp_path: Any) -> None:
    broker = Broker(tmp_path)  # never started
    console = _console()
    assert cmd_fleet(_args(broker, timeout=0.5), console) == 1
    assert "cannot reach the broker" in console.export_text()
    assert cmd_status(_args(broker, _cmd="status", timeout=0.5), console) == 1


def test_apply_message_ignores_foreign_and_cleared_topics() -> None:
    views: dict[str, BotView] = {}
    assert apply_message(views, "hedgebot", "hedgebot/a/state", b'{"ts_ms": 1}', 5) == "a"
    assert apply_message(views, "hedgebot", "hedgebot/a/status", b"online", 6) == "a"
    assert apply_message(views, "hedgebot", "other/a/state", b"{}", 7) is None
    assert apply_message(views, "hedgebot", "hedgebot/b/state", b"", 7) is None
    assert apply_message(views, "hedgebot", "hedgebot/b/state", b"not json", 7) is None
    assert apply_message(views, "hedgebot", "hedgebot/b/cmd/reply", b"{}", 7) is None
    assert (
        set(views) == {"a"} and views["a"].status == "online" and views["a"].state == {"ts_ms": 1}
    )
