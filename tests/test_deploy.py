"""deploy/: the compose file, the secrets script, the shipped Mosquitto config with its ACL, the
env example, the Dockerfile and the systemd unit, checked as far as this machine allows.

No Docker engine here, so compose itself never runs: the compose file is parsed and every host
path it mounts must exist in the repository or be made by deploy/make-secrets.sh (run on a copy
of deploy/), and every path the broker config names must land on such a mount. The shipped
mosquitto.conf then runs for real, paths remapped into a temp dir and ports made free, with the
users the script made, and aiomqtt clients check what each user can and cannot do.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import socket
import ssl
import subprocess
import time
import tomllib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath

import aiomqtt
import pytest
import yaml

from bot.config import load_settings
from tests.test_mqtt_broker import MOSQUITTO, free_port

ROOT = Path(__file__).resolve().parent.parent
DEPLOY = ROOT / "deploy"
pytestmark = pytest.mark.slow


def compose() -> dict[str, object]:
    doc = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    assert isinstance(doc, dict)
    return doc


def services() -> dict[str, dict[str, object]]:
    s = compose()["services"]
    assert isinstance(s, dict)
    return s


@pytest.fixture(scope="module")
def deploy_made(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """deploy/ copied, with make-secrets.sh --tls run in the copy as the README says."""
    copy = tmp_path_factory.mktemp("made") / "deploy"
    shutil.copytree(DEPLOY, copy, ignore=shutil.ignore_patterns("secrets", "hedgebot.env"))
    r = subprocess.run(
        [str(copy / "make-secrets.sh"), "--tls"], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    return copy


@pytest.fixture
def deploy_copy(deploy_made: Path, tmp_path: Path) -> Path:
    """A private copy of the made deploy/ (tests change it), made once per module: RSA is slow."""
    copy = tmp_path / "deploy"
    shutil.copytree(deploy_made, copy)
    return copy


def env_lines(path: Path) -> dict[str, str]:
    out = {}
    for line in path.read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip()
    return out


def credentials(copy: Path) -> dict[str, str]:
    return env_lines(copy / "secrets" / "credentials.env")


# --- the compose file --------------------------------------------------------------------------


def bind_mounts() -> list[tuple[str, str, str]]:
    """(service, host path relative to deploy/, container path) of every bind mount."""
    out = []
    for name, svc in services().items():
        for vol in svc.get("volumes", []):  # type: ignore[attr-defined]
            host, container = str(vol).split(":")[:2]
            if host.startswith((".", "/")):
                out.append((name, host, container))
    return out


def test_compose_mounts_and_env_files_exist_or_are_made_by_the_script(deploy_copy: Path) -> None:
    mounts = bind_mounts()
    assert {s for s, _, _ in mounts} == {"mosquitto"}
    made_by_script = set()
    for _, host, _ in mounts:
        if not (DEPLOY / host).exists():
            assert (deploy_copy / host).exists(), f"{host}: not in the repo, not made by the script"
            made_by_script.add(host)
    assert made_by_script == {"./secrets/broker"}  # secrets stay out of the repository
    for name, svc in services().items():
        for env_file in svc.get("env_file", []):  # type: ignore[attr-defined]
            assert not (DEPLOY / env_file).exists() or (DEPLOY / env_file).is_file()
            assert (deploy_copy / env_file).is_file(), f"{name}: env_file {env_file} not made"
    build = services()["hedgebot"]["build"]
    assert isinstance(build, dict)
    assert (DEPLOY / build["context"] / build["dockerfile"]).is_file()
    ignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "/deploy/secrets/" in ignored and "/deploy/hedgebot.env" in ignored


def test_every_path_in_the_broker_config_lands_on_a_mounted_file(deploy_copy: Path) -> None:
    mounts = [(PurePosixPath(c), deploy_copy / h) for s, h, c in bind_mounts() if s == "mosquitto"]
    conf = (DEPLOY / "mosquitto.conf").read_text()
    conf += (deploy_copy / "secrets/broker/conf.d/tls.conf").read_text()
    paths = re.findall(
        r"^(?:password_file|acl_file|cafile|certfile|keyfile|include_dir) (\S+)$", conf, re.M
    )
    assert len(paths) == 6
    for p in paths:
        target = PurePosixPath(p)
        hits = [host / target.relative_to(c) for c, host in mounts if target.is_relative_to(c)]
        assert hits and hits[0].exists(), f"{p}: not provided by any mount"
    # The persistence directory is the image's own /mosquitto/data, kept on a named volume.
    assert "persistence_location /mosquitto/data/" in conf
    assert any(str(v).endswith(":/mosquitto/data") for v in services()["mosquitto"]["volumes"])  # type: ignore[attr-defined]


def test_broker_and_bot_can_reach_each_other() -> None:
    conf = (DEPLOY / "mosquitto.conf").read_text()
    # No bind address: every interface of the broker's container, so the bot container reaches it.
    assert re.findall(r"^listener .*$", conf, re.M) == ["listener 1883"]
    env = services()["hedgebot"]["environment"]
    assert isinstance(env, dict)
    assert env["HEDGEBOT_MQTT__HOST"] in services()
    assert env["HEDGEBOT_MQTT__ENABLED"] == "true" and env["HEDGEBOT_MQTT__PORT"] == "1883"
    assert services()["hedgebot"]["depends_on"] == ["mosquitto"]


def test_env_example_matches_the_acl_and_creates_no_account(tmp_path: Path) -> None:
    env = env_lines(DEPLOY / "hedgebot.env.example")
    assert not [k for k in env if k.startswith("HEDGEBOT_ACCOUNTS__")]
    bot_id, user = env["HEDGEBOT_BOT_ID"], env["HEDGEBOT_MQTT__USERNAME"]
    assert user == f"bot-{bot_id}"
    acl = (DEPLOY / "mosquitto.acl").read_text()
    block = acl.split(f"\nuser {user}\n", 1)[1].split("\n\n", 1)[0]
    assert f"topic write hedgebot/{bot_id}/state" in block
    assert f"topic read hedgebot/{bot_id}/cmd" in block
    # The image runs config/paper.toml: with this environment it has the one sim account.
    image_cmd = (DEPLOY / "Dockerfile").read_text().split("CMD ", 1)[1]
    assert "config/paper.toml" in image_cmd
    dotenv = tmp_path / "hedgebot.env"
    dotenv.write_text(
        (DEPLOY / "hedgebot.env.example").read_text().replace("PASSWORD=", "PASSWORD=x")
    )
    saved = {k: os.environ.pop(k) for k in list(os.environ) if k.startswith("HEDGEBOT_")}
    try:
        settings = load_settings(ROOT / "config" / "paper.toml", dotenv)
    finally:
        os.environ.update(saved)
    assert list(settings.accounts) == ["sim"]
    assert settings.bot_id == bot_id and settings.mqtt.username == user


def test_dockerfile_healthcheck_and_systemd_unit() -> None:
    docker = (DEPLOY / "Dockerfile").read_text()
    health = re.search(r"^HEALTHCHECK .*\n(?:.*\n)*?\s*CMD (\[.*\])$", docker, re.M)
    assert health is not None and "/healthz" in health.group(1)
    assert '"python"' in health.group(1)  # no curl in python:slim
    assert "HEDGEBOT_METRICS__ENABLED=true" in docker  # the endpoint lives on the metrics port
    unit = (DEPLOY / "hedgebot.service").read_text()
    for line in ("Type=notify", "NotifyAccess=main", "RestartPreventExitStatus=2 3"):
        assert re.search(rf"^{re.escape(line)}$", unit, re.M), line
    assert re.search(r"^WatchdogSec=\d+$", unit, re.M)


def test_pyyaml_is_a_test_dependency() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.lower().startswith("pyyaml") for d in project["optional-dependencies"]["test"])


def test_secrets_script_keeps_passwords_and_refuses_bad_input(deploy_copy: Path) -> None:
    before = credentials(deploy_copy)
    assert set(before) == {"operator", "viewer", "bot-paper-1"}
    assert all(len(v) == 32 for v in before.values())
    env = env_lines(deploy_copy / "hedgebot.env")
    assert env["HEDGEBOT_MQTT__PASSWORD"] == before["bot-paper-1"]
    assert (deploy_copy / "hedgebot.env").stat().st_mode & 0o077 == 0
    r = subprocess.run(
        [str(deploy_copy / "make-secrets.sh"), "--bot", "alpha"], capture_output=True, text=True
    )
    assert r.returncode == 0, r.stderr
    after = credentials(deploy_copy)
    assert {k: after[k] for k in before} == before and "bot-alpha" in after
    users = [
        line.split(":")[0]
        for line in (deploy_copy / "secrets/broker/passwords").read_text().splitlines()
    ]
    assert users == ["operator", "viewer", "bot-alpha"]
    r = subprocess.run(
        [str(deploy_copy / "make-secrets.sh"), "--bot", "a/b"], capture_output=True, text=True
    )
    assert r.returncode == 2 and "bad bot id 'a/b'" in r.stderr
    r = subprocess.run(
        [str(deploy_copy / "make-secrets.sh"), "--bot", "nobody"], capture_output=True, text=True
    )
    assert r.returncode == 0 and "no 'user bot-nobody' block" in r.stderr


# --- the shipped broker config, running ----------------------------------------------------------


class ShippedBroker:
    """deploy/mosquitto.conf as shipped, container paths remapped into the deploy copy."""

    def __init__(self, copy: Path) -> None:
        self.port, self.tls_port = free_port(), free_port()
        broker = copy / "secrets" / "broker"
        data = copy / "data"
        data.mkdir()

        def remap(text: str) -> str:
            text = text.replace("/mosquitto/config/secrets", str(broker))
            text = text.replace("/mosquitto/config/mosquitto.acl", str(copy / "mosquitto.acl"))
            return text.replace("/mosquitto/data/", f"{data}/")

        tls_conf = broker / "conf.d" / "tls.conf"
        tls_conf.write_text(
            remap(tls_conf.read_text()).replace(
                "listener 8883", f"listener {self.tls_port} 127.0.0.1"
            )
        )
        conf = remap((copy / "mosquitto.conf").read_text())
        conf = conf.replace("\nlistener 1883\n", f"\nlistener {self.port} 127.0.0.1\n")
        if os.geteuid() == 0:  # as root mosquitto would drop to a user who cannot read tmp dirs
            conf = "user root\n" + conf
        self.conf = copy / "mosquitto.test.conf"
        self.conf.write_text(conf)
        self.log = copy / "mosquitto.log"
        self.ca = broker / "certs" / "ca.crt"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as logf:
            self.proc = subprocess.Popen(
                [MOSQUITTO, "-c", str(self.conf)], stdout=logf, stderr=logf
            )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            assert self.proc.poll() is None, f"mosquitto exited: {self.log.read_text()[-2000:]}"
            try:
                for port in (self.port, self.tls_port):
                    socket.create_connection(("127.0.0.1", port), 0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen: {self.log.read_text()[-2000:]}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(5)


@pytest.fixture
def shipped_broker(deploy_copy: Path) -> Iterator[tuple[ShippedBroker, dict[str, str]]]:
    b = ShippedBroker(deploy_copy)
    b.start()
    try:
        yield b, credentials(deploy_copy)
    finally:
        b.stop()


async def delivered(
    b: ShippedBroker, pw: dict[str, str], writer: str, reader: str, topic: str
) -> bool:
    """Whether `reader`, subscribed to `topic`, gets what `writer` publishes there."""
    async with aiomqtt.Client("127.0.0.1", b.port, username=reader, password=pw[reader]) as r:
        await r.subscribe(topic, qos=1)
        async with aiomqtt.Client("127.0.0.1", b.port, username=writer, password=pw[writer]) as w:
            await w.publish(topic, b"x", qos=1)
        try:
            async with asyncio.timeout(0.7):
                async for _ in r.messages:
                    return True
        except TimeoutError:
            return False
    return False


async def test_shipped_broker_bot_user_publishes_telemetry_and_reads_commands(
    shipped_broker: tuple[ShippedBroker, dict[str, str]],
) -> None:
    b, pw = shipped_broker
    bot = "bot-paper-1"
    for suffix in ("status", "state", "events", "cmd/reply"):
        assert await delivered(b, pw, bot, "operator", f"hedgebot/paper-1/{suffix}"), suffix
    assert await delivered(b, pw, "operator", bot, "hedgebot/paper-1/cmd")
    assert not await delivered(b, pw, bot, "operator", "hedgebot/paper-1/cmd")
    assert not await delivered(b, pw, bot, "operator", "hedgebot/alpha/state")


async def test_shipped_broker_viewer_reads_state_and_cannot_command(
    shipped_broker: tuple[ShippedBroker, dict[str, str]],
) -> None:
    b, pw = shipped_broker
    assert await delivered(b, pw, "bot-paper-1", "viewer", "hedgebot/paper-1/state")
    # The broker drops the viewer's command: the operator, who reads everything, sees nothing.
    assert not await delivered(b, pw, "viewer", "operator", "hedgebot/paper-1/cmd")
    assert await delivered(b, pw, "operator", "operator", "hedgebot/paper-1/cmd")


async def test_shipped_broker_refuses_anonymous_and_serves_tls_with_the_made_ca(
    shipped_broker: tuple[ShippedBroker, dict[str, str]],
) -> None:
    b, pw = shipped_broker
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", b.port):
            pass
    with pytest.raises(aiomqtt.MqttError):
        async with aiomqtt.Client("127.0.0.1", b.port, username="viewer", password="wrong"):
            pass
    ctx = ssl.create_default_context(cafile=str(b.ca))  # hostname checked: 127.0.0.1 is a SAN
    async with aiomqtt.Client(
        "127.0.0.1", b.tls_port, username="viewer", password=pw["viewer"], tls_context=ctx
    ) as c:
        await c.subscribe("hedgebot/+/state")
    with pytest.raises(aiomqtt.MqttError):  # a client that does not trust the CA is refused
        async with aiomqtt.Client(
            "127.0.0.1",
            b.tls_port,
            username="viewer",
            password=pw["viewer"],
            tls_context=ssl.create_default_context(),
        ):
            pass
