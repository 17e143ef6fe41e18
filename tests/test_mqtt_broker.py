"""A real Mosquitto for the MQTT tests (started on a free port, stopped and restarted on demand),
and tests of the deploy/ broker configuration (authentication and ACL) against it.

Other test modules import `Broker` and the `mqtt_broker` fixture from here.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import aiomqtt
import pytest

ROOT = Path(__file__).resolve().parent.parent
MOSQUITTO = shutil.which("mosquitto") or "/usr/sbin/mosquitto"

# The suite needs a real broker: a missing mosquitto is a failure to fix (apt-get install
# mosquitto; .ci/run does it), never a skip.
assert Path(MOSQUITTO).exists(), "mosquitto is not installed: apt-get install mosquitto"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Broker:
    """A Mosquitto process on 127.0.0.1:<port>, with a config written to `workdir`."""

    def __init__(self, workdir: Path, port: int | None = None, extra_conf: str = "") -> None:
        self.workdir = workdir
        self.port = port or free_port()
        self.host = "127.0.0.1"
        self.conf = workdir / "mosquitto.conf"
        self.log = workdir / "mosquitto.log"
        self.extra_conf = extra_conf
        self.proc: subprocess.Popen[bytes] | None = None

    def write_conf(self) -> None:
        body = self.extra_conf or "allow_anonymous true\n"
        if os.geteuid() == 0 and "\nuser " not in f"\n{body}":
            # As root mosquitto drops to user "mosquitto", who cannot use pytest's 0700 tmp dir.
            body += "user root\n"
        self.conf.write_text(f"listener {self.port} 127.0.0.1\n{body}")

    def start(self) -> None:
        self.write_conf()
        logf = self.log.open("ab")
        self.proc = subprocess.Popen([MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=logf)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"mosquitto exited: {self.log.read_text()[-2000:]}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
                return
            time.sleep(0.05)
        raise RuntimeError("mosquitto did not start listening")

    def stop(self, graceful: bool = False) -> None:
        """Kill the broker (as a crash would), or with `graceful` let it save its persistence
        file and close connections first."""
        if self.proc is not None and self.proc.poll() is None:
            if graceful:
                self.proc.terminate()
            else:
                self.proc.kill()
            self.proc.wait(5)
        self.proc = None

    def restart(self, down_s: float = 0.0) -> None:
        """Kill and start again on the same port (retained messages are lost: no persistence)."""
        self.stop()
        if down_s:
            time.sleep(down_s)
        self.start()


@pytest.fixture
def mqtt_broker(tmp_path: Path) -> Iterator[Broker]:
    broker = Broker(tmp_path)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def read_retained(
    host: str, port: int, topic: str, wait_s: float = 3.0, **kw: object
) -> bytes | None:
    """The retained payload of `topic`, or None if there is none within `wait_s`."""
    async with aiomqtt.Client(host, port, **kw) as c:  # type: ignore[arg-type]
        await c.subscribe(topic)
        try:
            async with asyncio.timeout(wait_s):
                async for m in c.messages:
                    if m.retain:
                        return bytes(m.payload)  # type: ignore[arg-type]
        except TimeoutError:
            return None
    return None


# --- the broker helper itself -------------------------------------------------------------------


async def test_broker_restart_keeps_port(mqtt_broker: Broker) -> None:
    port = mqtt_broker.port
    async with aiomqtt.Client(mqtt_broker.host, port) as c:
        await c.publish("t/x", b"1", qos=1)
    mqtt_broker.restart()
    assert mqtt_broker.port == port
    async with aiomqtt.Client(mqtt_broker.host, port) as c:
        await c.publish("t/x", b"2", qos=1)


# --- deploy/mosquitto.conf and deploy/mosquitto.acl ---------------------------------------------

MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


@pytest.fixture
def secured_broker(tmp_path: Path) -> Iterator[Broker]:
    """The deploy ACL and a password file made as the deploy conf says, on a test listener."""
    assert MOSQUITTO_PASSWD is not None, "mosquitto_passwd (package mosquitto) is not installed"
    passwd = tmp_path / "passwd"
    passwd.touch()
    for user in ("operator", "viewer", "bot-alpha", "bot-beta"):
        subprocess.run([MOSQUITTO_PASSWD, "-b", str(passwd), user, f"{user}-pw"], check=True)
    acl = tmp_path / "acl"
    shutil.copy(ROOT / "deploy" / "mosquitto.acl", acl)
    conf = (ROOT / "deploy" / "mosquitto.conf").read_text()
    # Keep the deploy file's own settings, minus listeners and paths that need root.
    kept = [
        line
        for line in conf.splitlines()
        if line.strip()
        and not line.lstrip().startswith("#")
        and line.split()[0]
        in {"allow_anonymous", "per_listener_settings", "max_packet_size", "max_inflight_messages"}
    ]
    assert "allow_anonymous false" in kept
    extra = "\n".join(kept) + f"\npassword_file {passwd}\nacl_file {acl}\n"
    broker = Broker(tmp_path, extra_conf=extra)
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


async def _can_deliver(b: Broker, user: str, topic: str, reader: str = "operator") -> bool:
    """Whether `user` can publish on `topic` (seen by `reader`, who may read everything)."""
    async with aiomqtt.Client(b.host, b.port, username=reader, password=f"{reader}-pw") as r:
        await r.subscribe(topic, qos=1)
        async with aiomqtt.Client(b.host, b.port, username=user, password=f"{user}-pw") as w:
            await w.publish(topic, b"x", qos=1)
        try:
            async with asyncio.timeout(0.7):
                async for _ in r.messages:
                    return True
        except TimeoutError:
            return False
    return False


async def test_deploy_acl_only_operator_writes_cmd(secured_broker: Broker) -> None:
    b = secured_broker
    assert await _can_deliver(b, "operator", "hedgebot/alpha/cmd")
    assert not await _can_deliver(b, "viewer", "hedgebot/alpha/cmd")
    assert not await _can_deliver(b, "bot-alpha", "hedgebot/alpha/cmd")
    assert not await _can_deliver(b, "bot-beta", "hedgebot/alpha/cmd")
    # a bot writes only its own telemetry
    for suffix in ("status", "state", "events", "cmd/reply"):
        assert await _can_deliver(b, "bot-alpha", f"hedgebot/alpha/{suffix}")
        assert not await _can_deliver(b, "bot-beta", f"hedgebot/alpha/{suffix}")
    assert not await _can_deliver(b, "viewer", "hedgebot/alpha/state")
    assert await _can_deliver(b, "operator", "hedgebot/alpha/positions/in")
    assert not await _can_deliver(b, "viewer", "hedgebot/alpha/positions/in")


async def test_deploy_acl_bot_reads_its_commands_viewer_reads_state(
    secured_broker: Broker,
) -> None:
    b = secured_broker
    # bot-alpha receives its own cmd, not beta's
    assert await _can_deliver(b, "operator", "hedgebot/alpha/cmd", reader="bot-alpha")
    assert not await _can_deliver(b, "operator", "hedgebot/beta/cmd", reader="bot-alpha")
    # the viewer sees state and status but not commands
    assert await _can_deliver(b, "bot-alpha", "hedgebot/alpha/state", reader="viewer")
    assert await _can_deliver(b, "bot-alpha", "hedgebot/alpha/status", reader="viewer")
    assert not await _can_deliver(b, "operator", "hedgebot/alpha/cmd", reader="viewer")


async def test_deploy_refuses_anonymous_and_bad_password(secured_broker: Broker) -> None:
    b = secured_broker
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(b.host, b.port):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client(b.host, b.port, username="operator", password="wrong"):
            pass
