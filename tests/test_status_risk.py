"""`hedgebot status` shows the risk block of a bot's state, published by a real bridge."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import pytest

from bot.io.mqtt import MqttBridge
from tests.test_mqtt_bridge import FakeController, make_config, until
from tests.test_mqtt_broker import Broker, mqtt_broker
from tests.test_mqtt_fleet import _args, _console

__all__ = ["mqtt_broker"]
pytestmark = pytest.mark.slow

GRID = {
    "spot_pct": [-10.0, 0.0, 10.0],
    "iv_points": [0.0],
    "pnl_usd": [[-7200.0, 0.0, 7200.0]],
    "worst": {"spot_pct": -10.0, "iv_points": 0.0, "pnl_usd": -7200.0},
}


class RiskController(FakeController):
    def state(self) -> dict[str, Any]:
        doc = super().state()
        doc["risk"] = {
            "underlyings": {
                "BTC": {
                    "scenarios": GRID,
                    "var_99_usd": 1234.5,
                    "cvar_99_usd": 1500.25,
                    "samples": 250,
                    "error": None,
                },
                "ETH": {
                    "scenarios": None,
                    "var_99_usd": None,
                    "cvar_99_usd": None,
                    "samples": 0,
                    "error": "no implied vol for held options ['ETH-X']",
                },
            },
            "total": {"scenarios": None, "var_99_usd": None, "cvar_99_usd": None, "samples": 0},
        }
        return doc


async def _status(mqtt_broker: Broker, bot_id: str, controller: FakeController) -> str:
    """`hedgebot status` against a bridge publishing `controller`'s state; its console text."""
    bridge = MqttBridge(make_config(mqtt_broker), bot_id, controller)
    task = asyncio.create_task(bridge.run())
    await until(lambda: bridge.connected)
    bridge.request_state()
    await asyncio.sleep(0.3)
    try:
        console = _console()
        args = _args(mqtt_broker, _cmd="status", bot_id=bot_id, timeout=3)
        rc = await asyncio.to_thread(args.func, args, console)
    finally:
        await bridge.close()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    out: str = console.export_text()
    assert rc == 0, out
    return out


async def test_status_prints_var_cvar_and_the_worst_cell(mqtt_broker: Broker) -> None:
    out = await _status(mqtt_broker, "gamma", RiskController())
    rows = {
        c.split()[0]: c
        for c in (line.replace("│", " ") for line in out.splitlines())
        if c.split()[:1] in (["BTC"], ["ETH"], ["total"])
    }
    assert "$1,234" in rows["BTC"] and "$1,500" in rows["BTC"] and " 250 " in rows["BTC"]
    assert "$-7,200 at spot -10% iv +0pt" in rows["BTC"]
    assert "no implied vol" in rows["ETH"]
    assert rows["total"].split()[1:4] == ["-", "-", "0"]  # no number is made up


class RoutingController(FakeController):
    def state(self) -> dict[str, Any]:
        doc = super().state()
        doc["underlyings"]["BTC"]["routing"] = [
            {"account": "cheap", "symbol": "BTC/USDT:USDT", "position": -3.0,
             "position_coin": -3.0, "limit_coin": 3.0, "funding_rate": 0.0001,
             "funding": "fresh", "basis_bps": None},
            {"account": "dear", "symbol": "BTC/USDT:USDT-261225", "position": -1.5,
             "position_coin": -1.5, "limit_coin": 83.3333, "funding_rate": None,
             "funding": "n/a", "basis_bps": 42.25},
        ]  # fmt: skip
        return doc


async def test_status_prints_each_routing_candidate(mqtt_broker: Broker) -> None:
    out = await _status(mqtt_broker, "route", RoutingController())
    rows = [line.replace("│", " ").split() for line in out.splitlines()]
    cheap = next(r for r in rows if r[1:2] == ["cheap"])
    dear = next(r for r in rows if r[1:2] == ["dear"])
    assert cheap[2:] == ["BTC/USDT:USDT", "-3.0000", "3.0000", "+0.0100%", "fresh", "-"]
    assert dear[2:] == ["BTC/USDT:USDT-261225", "-1.5000", "83.3333", "n/a", "+42.2"]
