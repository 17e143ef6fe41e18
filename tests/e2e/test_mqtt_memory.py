"""Resident memory under a flood of invalid commands: the real daemon (`python -m bot run`, with a
command secret) on a real Mosquitto gets 10,000 invalid payloads (malformed JSON, oversized,
wrong schema, bad or missing signatures) after a warm-up; its VmRSS (from /proc) may not grow by
more than 5 MB. Every payload is either refused with a reply/event or, when the inbound queue's
byte budget is spent, dropped and counted; none runs, and the daemon still answers afterwards."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path

import paho.mqtt.client as paho
import pytest
from paho.mqtt.enums import CallbackAPIVersion

from bot.io.command_auth import signed
from tests.e2e.test_mqtt_daemon import (
    SECRET,
    Daemon,
    Operator,
    no_traceback,
    now_ms,
    wait_until,
    write_config,
)
from tests.helpers import clean_env
from tests.test_mqtt_broker import Broker

pytestmark = pytest.mark.slow

# The warm-up is as long as the flood: glibc raises its mmap threshold after the first large
# payloads are freed, so the heap and its arenas grow for the first several thousand messages
# (measured: +2.5 MB over the first 10,000, then within 0.3 MB over the next 12,000). A shorter
# warm-up measured that settling, not a leak, and sat at the bound.
WARMUP = 10_000
FLOOD = 10_000
MAX_GROWTH_MB = 5.0
BURST = 500


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


def invalid(i: int) -> bytes:
    """Five kinds of invalid command, each with an id so that a reply is owed."""
    k = i % 5
    if k == 0:  # malformed JSON
        return b'{"id": "bad-%d", "cmd": "pause", ' % i
    if k == 1:  # oversized (max_payload_bytes is 4096), and now and then far beyond
        pad = "x" * (300_000 if i % 50 == 1 else 8_000)
        return json.dumps({"id": f"bad-{i}", "cmd": "pause", "pad": pad}).encode()
    if k == 2:  # wrong schema
        return json.dumps({"id": f"bad-{i}", "cmd": "set", "args": {"path": 3}}).encode()
    if k == 3:  # signed with the wrong secret
        body = signed({"id": f"bad-{i}", "cmd": "hedge-now"}, "not-the-secret", now_ms())
        return json.dumps(body).encode()
    # unsigned, with a unique id each time
    return json.dumps({"id": f"bad-{i}-{time.monotonic_ns()}", "cmd": "status"}).encode()


def vm_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


def test_ten_thousand_invalid_commands_do_not_grow_memory(tmp_path: Path, broker: Broker) -> None:
    cfg = write_config(tmp_path, broker.port)
    d = Daemon(cfg, clean_env(HEDGEBOT_MQTT__COMMAND_SECRET=SECRET))
    op = Operator(broker.port)
    flood = paho.Client(CallbackAPIVersion.VERSION2, client_id="flood")
    flood.connect("127.0.0.1", broker.port)
    flood.loop_start()
    try:
        d.wait_event("mqtt.connected")
        # Paused, so that trading allocates nothing while we measure.
        op.publish("cmd", signed({"id": "the-pause", "cmd": "pause"}, SECRET, now_ms()))
        assert op.reply("the-pause")["ok"]

        def handled() -> int:
            drops = [e["dropped_total"] for e in d.named("mqtt.incoming_dropped")]
            return d.count("command.rejected") + max(drops, default=0)

        def send(start: int, n: int) -> None:
            # In bursts of BURST: Mosquitto queues at most 1000 messages per subscriber
            # (max_queued_messages) and drops the rest, which would make the count below inexact.
            for b in range(start, start + n, BURST):
                for i in range(b, b + BURST):
                    info = flood.publish(f"{op.base}/cmd", invalid(i), qos=1)
                info.wait_for_publish(timeout=60)
                end = b + BURST
                wait_until(lambda end=end: handled() >= end, 120, f"{end} payloads handled")
            d.assert_alive()

        send(0, WARMUP)
        time.sleep(1)
        before = vm_rss_mb(d.proc.pid)
        send(WARMUP, FLOOD)
        time.sleep(1)
        after = vm_rss_mb(d.proc.pid)
        print(f"daemon VmRSS after warm-up {before:.1f} MB, after {FLOOD} more {after:.1f} MB")
        assert after - before < MAX_GROWTH_MB, f"VmRSS {before:.1f} -> {after:.1f} MB"

        # None ran: every reply to a flood payload is an error, and the bot is still paused
        # and answers a valid signed command.
        assert not [r for r in op.snapshot("replies") if r["id"] != "the-pause" and r["ok"]]
        assert handled() == WARMUP + FLOOD
        op.publish("cmd", signed({"id": "after", "cmd": "status"}, SECRET, now_ms()))
        r = op.reply("after")
        assert r["ok"] and r["result"]["trading_state"] == "paused", r
        assert r["result"]["mqtt"]["commands_rejected"] == d.count("command.rejected")
        code = d.stop()
    finally:
        flood.loop_stop()
        flood.disconnect()
        op.close()
        d.kill()
    assert code == 0, d.stderr
    no_traceback(d)
