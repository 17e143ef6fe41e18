"""Health endpoints, systemd notifications and the one-daemon-per-journal lock, each through a
real `python -m bot run` subprocess.

- /healthz and /readyz on the metrics port: ready once running, 503 with the reason while the
  halt file holds trading, and while the exchange's streams are silent (the local exchange
  emulator, through the real ccxt classes); the Dockerfile's HEALTHCHECK command against it.
- sd_notify: a unix datagram socket bound by the test stands in for systemd's NOTIFY_SOCKET.
- a second daemon on a journal in use exits at once with exit code 3 and says why.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.e2e.test_ccxt_daemon import deribit_book, deribit_config, keys, running
from tests.emulator import DeribitEmulator
from tests.helpers import ROOT, clean_env, parse_events

pytestmark = pytest.mark.slow
T = TypeVar("T")

CONFIG = """
bot_id = "health-e2e"
[journal]
path = "{journal}"
[metrics]
enabled = true
port = {port}
refresh_s = 0.5
[risk]
halt_file = "{halt}"
[sim]
seed = 3
speed = 1.0
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.5
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "spot"
qty = 1
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
policy = {{ kind = "band", band = 5 }}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def get(port: int, path: str) -> tuple[int, dict[str, Any]]:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=5) as r:
            return int(r.status), json.loads(r.read())
    except urllib.error.HTTPError as e:
        return int(e.code), json.loads(e.read())


def poll(
    what: str, cond: Callable[[], T | None], proc: subprocess.Popen[str], limit_s: float = 60
) -> T:
    deadline = time.monotonic() + limit_s
    last: Any = None
    while time.monotonic() < deadline:
        assert proc.poll() is None, f"daemon exited ({proc.returncode}) waiting for {what}"
        try:
            value = cond()
        except OSError as e:  # not listening yet
            last = e
        else:
            if value:
                return value
            last = value
        time.sleep(0.2)
    pytest.fail(f"timed out waiting for {what}; last: {last!r}")


class Background:
    """`python -m bot run` in the background, its stdout in a file (a pipe could fill up)."""

    def __init__(
        self, tmp: Path, config: Path, *args: str, env: dict[str, str] | None = None
    ) -> None:
        self.log = tmp / f"daemon-{time.monotonic_ns()}.log"
        self.out = self.log.open("w")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                str(config),
                "--log-format",
                "json",
                *args,
            ],
            cwd=ROOT,
            env=env or clean_env(),
            stdout=self.out,
            stderr=subprocess.PIPE,
            text=True,
        )

    def events(self) -> list[dict[str, Any]]:
        text = self.log.read_text()
        return parse_events(text[: text.rfind("\n") + 1])  # a line being written is not JSON yet

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events() if e.get("event") == name]

    def stop(self, sig: int = signal.SIGTERM) -> tuple[int, str]:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            _, err = self.proc.communicate(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            _, err = self.proc.communicate()
        self.out.close()
        return self.proc.returncode, err


@pytest.fixture
def sim_daemon(tmp_path: Path) -> Iterator[tuple[Background, int, Path]]:
    port = free_port()
    halt = tmp_path / "HALT"
    cfg = tmp_path / "health.toml"
    cfg.write_text(CONFIG.format(journal=tmp_path / "j.sqlite", port=port, halt=halt))
    d = Background(tmp_path, cfg)
    try:
        yield d, port, halt
    finally:
        d.stop(signal.SIGKILL)


def test_healthz_and_readyz_follow_the_daemon_and_the_halt_file(
    sim_daemon: tuple[Background, int, Path],
) -> None:
    d, port, halt = sim_daemon
    code, body = poll("/readyz 200", lambda: (r := get(port, "/readyz"))[0] == 200 and r, d.proc)
    assert body["ready"] is True and body["reasons"] == []
    assert set(body["checks"]) == {"engine", "feeds", "venues", "trading", "journal"}
    code, live = get(port, "/healthz")
    assert code == 200 and live["status"] == "ok" and live["loop_age_s"] < live["max_loop_lag_s"]
    assert live["pid"] == d.proc.pid
    # Every other path still serves the Prometheus metrics.
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
        assert 'hedgebot_info{bot_id="health-e2e"} 1.0' in r.read().decode()

    # The image's HEALTHCHECK command, as Docker runs it, passes against this daemon.
    check = healthcheck_command()
    env = clean_env(HEDGEBOT_METRICS__PORT=str(port))
    assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode == 0

    # The kill switch: trading halts, readiness says so and why; liveness does not change.
    halt.touch()
    code, body = poll("/readyz 503", lambda: (r := get(port, "/readyz"))[0] == 503 and r, d.proc)
    assert body["ready"] is False
    assert body["checks"]["trading"] == {
        "ok": False,
        "problems": ["trading_state halted (kill_file)"],
    }
    assert body["reasons"] == ["trading: trading_state halted (kill_file)"]
    assert get(port, "/healthz")[0] == 200
    halt.unlink()
    poll("/readyz 200 again", lambda: get(port, "/readyz")[0] == 200, d.proc)

    code, err = d.stop()
    assert code == 0, err
    names = [e.get("event") for e in d.events()]
    assert "health.ready" in names and "health.not_ready" in names
    # Nothing listens any more: the HEALTHCHECK command fails.
    assert subprocess.run(check, env=env, capture_output=True, timeout=30).returncode != 0


def healthcheck_command() -> list[str]:
    docker = (ROOT / "deploy" / "Dockerfile").read_text()
    m = re.search(r"^HEALTHCHECK [^\n]*\\\n\s*CMD (\[.*\])$", docker, re.M)
    assert m is not None, "no exec-form HEALTHCHECK CMD in deploy/Dockerfile"
    argv = json.loads(m.group(1))
    assert argv[0] == "python"
    return [sys.executable, *argv[1:]]


async def test_readyz_names_the_silent_feed_of_a_real_exchange_connection(tmp_path: Path) -> None:
    emu = await DeribitEmulator().start()
    try:
        deribit_book(emu)
        port = free_port()
        cfg = deribit_config(
            tmp_path, emu, "testnet", f"[metrics]\nenabled = true\nport = {port}\n"
        )

        async def ready(expect: int) -> dict[str, Any]:
            code, body = await asyncio.to_thread(get, port, "/readyz")
            return body if code == expect else {}

        async with running(cfg, **keys("deribit")) as d:
            body = await d.wait_for("ready", lambda: None if not d.named("health.ready") else True)
            assert (await ready(200))["ready"] is True
            emu.faults.mute_streams = True  # sockets stay open, nothing comes: a silent feed
            body = {}
            deadline = time.monotonic() + 60
            while not body and time.monotonic() < deadline:
                body = await ready(503)
                await asyncio.sleep(0.3)
            assert body, "readyz never turned 503 while the streams were silent"
            feeds = body["checks"]["feeds"]
            assert feeds["ok"] is False
            assert any(
                p.startswith("deribit:ticker:BTC/USD:BTC: timeout") for p in feeds["problems"]
            ), feeds
            assert (await asyncio.to_thread(get, port, "/healthz"))[0] == 200  # alive, not ready
            emu.faults.mute_streams = False
            body = {}
            deadline = time.monotonic() + 60
            while not body and time.monotonic() < deadline:
                body = await ready(200)
                await asyncio.sleep(0.3)
            assert body, "readyz did not recover once the streams spoke again"
    finally:
        await emu.stop()


# --- systemd ----------------------------------------------------------------------------------


def test_systemd_notify_ready_watchdog_and_stopping_through_the_entry_point(tmp_path: Path) -> None:
    name = f"hedgebot-test-{os.getpid()}-{time.monotonic_ns()}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind("\0" + name)  # abstract: what systemd's '@' notation names
        sock.settimeout(0.2)
        env = clean_env(
            NOTIFY_SOCKET=f"@{name}",
            WATCHDOG_USEC="400000",  # pet every 0.2 s
            HEDGEBOT_JOURNAL__PATH=str(tmp_path / "paper.sqlite"),
        )
        proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                "config/paper.toml",
                "--duration",
                "600",
                "--log-format",
                "json",
            ],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        messages: list[str] = []
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            try:
                messages.append(sock.recv(4096).decode())
            except TimeoutError:
                if proc.poll() is not None:
                    break
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err[-2000:]
    kinds = [m.splitlines()[0] for m in messages]
    assert kinds.count("READY=1") == 1 and kinds.count("STOPPING=1") == 1, kinds
    ready, stopping = kinds.index("READY=1"), kinds.index("STOPPING=1")
    assert ready < stopping == len(kinds) - 1  # nothing after STOPPING
    # 600 s of paper time at speed 60 is about 10 s: dozens of pets at 0.2 s, also after READY.
    assert kinds.count("WATCHDOG=1") >= 10
    assert "WATCHDOG=1" in kinds[ready:stopping]
    events = parse_events(out)
    up = [e for e in events if e.get("event") == "health.up"]
    assert up and up[0]["systemd"] is True


def test_without_notify_socket_nothing_is_sent_and_the_daemon_runs(tmp_path: Path) -> None:
    env = clean_env(HEDGEBOT_JOURNAL__PATH=str(tmp_path / "paper.sqlite"))
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            "config/paper.toml",
            "--duration",
            "120",
            "--log-format",
            "json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]
    up = [e for e in parse_events(r.stdout) if e.get("event") == "health.up"]
    assert up and up[0]["systemd"] is False


# --- one daemon per journal --------------------------------------------------------------------


def test_second_daemon_on_the_same_journal_exits_at_once(tmp_path: Path) -> None:
    journal = tmp_path / "shared.sqlite"
    env = clean_env(HEDGEBOT_JOURNAL__PATH=str(journal))
    first = Background(tmp_path, ROOT / "config" / "paper.toml", env=env)
    try:
        poll("the first daemon started", lambda: first.named("engine.started"), first.proc)
        t0 = time.monotonic()
        r = subprocess.run(
            [
                sys.executable,
                "-m",
                "bot",
                "run",
                "--config",
                "config/paper.toml",
                "--log-format",
                "json",
            ],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert time.monotonic() - t0 < 20  # refused before connecting to anything
        assert r.returncode == 3
        assert f"journal.path {str(journal)!r} is in use by another hedgebot daemon" in r.stderr
        assert f"pid={first.proc.pid}" in r.stderr
        assert not [e for e in parse_events(r.stdout) if e.get("event") == "engine.started"]
        assert first.proc.poll() is None  # the first one hedges on
    finally:
        code, err = first.stop()
    assert code == 0, err
    # Released with the first daemon: the journal can be used again.
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            "config/paper.toml",
            "--duration",
            "60",
            "--log-format",
            "json",
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stderr[-2000:]


def test_paper_testnet_and_live_get_separate_default_journals(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from bot.config import load_settings

    cfg = tmp_path / "no-journal.toml"
    text = (ROOT / "config" / "paper.toml").read_text()
    cfg.write_text(re.sub(r"\[journal\]\npath = .*\n", "", text))
    for k in [k for k in os.environ if k.startswith("HEDGEBOT_")]:
        monkeypatch.delenv(k)
    paths = {}
    for mode in ("paper", "testnet"):
        monkeypatch.setenv("HEDGEBOT_ACCOUNTS__SIM__MODE", mode)
        paths[mode] = load_settings(cfg).journal.path
    monkeypatch.setenv("HEDGEBOT_ACCOUNTS__SIM__MODE", "paper")
    live = {"EXCHANGE": "deribit", "MODE": "live", "API_KEY": "k", "SECRET": "s"}
    for key, value in {**live, "CONFIRM_LIVE": "true"}.items():
        monkeypatch.setenv(f"HEDGEBOT_ACCOUNTS__DERIBIT__{key}", value)
    paths["live"] = load_settings(cfg).journal.path  # one live account makes it the live journal
    assert paths == {
        "paper": Path("state/paper-journal.sqlite"),
        "testnet": Path("state/testnet-journal.sqlite"),
        "live": Path("state/live-journal.sqlite"),
    }
    monkeypatch.setenv("HEDGEBOT_JOURNAL__PATH", str(tmp_path / "mine.sqlite"))
    assert load_settings(cfg).journal.path == tmp_path / "mine.sqlite"  # an explicit path wins
