"""The daemon end to end against the local exchange emulator, through `python -m bot run`.

The emulator runs in the test process (127.0.0.1 only); the daemon is a subprocess that reaches
it through the real ccxt classes, pointed there by the config's `urls` overrides, with keys from
the environment. The tests drive the emulator (positions moved as a manual trade would, faults
switched on and off) and read the daemon's JSON log lines; the emulator's own order book of
record proves what was and was not sent. Every wait polls for a condition with a generous
timeout, so a slow machine only makes the tests slower.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import pytest

from tests.emulator import BinanceEmulator, DeribitEmulator
from tests.helpers import ROOT, clean_env

pytestmark = pytest.mark.slow

T = TypeVar("T")
WAIT = 60.0  # seconds; generous, conditions are polled

PERP_B = "BTC/USDT:USDT"
PERP_D = "BTC/USD:BTC"
OPTION_D = "BTC/USD:BTC-300101-60000-C"


class Daemon:
    """`python -m bot run` as a subprocess, its JSON log lines collected as they come."""

    def __init__(self, config: Path, env: dict[str, str]) -> None:
        self.config = config
        self.env = env
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self.proc: asyncio.subprocess.Process | None = None
        self._readers: list[asyncio.Task[None]] = []

    async def start(self) -> Daemon:
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            "run",
            "--config",
            str(self.config),
            "--log-format",
            "json",
            cwd=ROOT,
            env=self.env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=1 << 22,
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self._readers = [
            asyncio.create_task(self._read(self.proc.stdout, True)),
            asyncio.create_task(self._read(self.proc.stderr, False)),
        ]
        return self

    async def _read(self, stream: asyncio.StreamReader, is_stdout: bool) -> None:
        async for raw in stream:
            line = raw.decode(errors="replace").strip()
            if is_stdout and line.startswith("{"):
                with contextlib.suppress(ValueError):
                    self.events.append(json.loads(line))
            elif line:
                self.stderr.append(line)

    def named(self, name: str) -> list[dict[str, Any]]:
        return [e for e in self.events if e.get("event") == name]

    def tail(self, n: int = 40) -> str:
        lines = [json.dumps(e)[:300] for e in self.events[-n:]]
        return "\n".join([*lines, "--- stderr ---", *self.stderr[-20:]])

    async def wait_for(self, what: str, cond: Callable[[], T | None], limit_s: float = WAIT) -> T:
        deadline = time.monotonic() + limit_s
        while time.monotonic() < deadline:
            value = cond()
            if value:
                return value
            assert self.proc is not None
            if self.proc.returncode is not None:
                pytest.fail(
                    f"daemon exited ({self.proc.returncode}) waiting for {what}\n" + self.tail()
                )
            await asyncio.sleep(0.1)
        pytest.fail(f"timed out waiting for {what}\n{self.tail()}")

    async def stop(self) -> int:
        assert self.proc is not None
        if self.proc.returncode is None:
            self.proc.send_signal(signal.SIGINT)
        try:
            code = await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            code = await self.proc.wait()
        for reader in self._readers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(reader, 5)
        return code


@contextlib.asynccontextmanager
async def running(config: Path, **env: str) -> AsyncIterator[Daemon]:
    daemon = await Daemon(config, clean_env(**env)).start()
    try:
        yield daemon
    finally:
        code = await daemon.stop()
        assert code == 0, daemon.tail()


def keys(account: str) -> dict[str, str]:
    prefix = f"HEDGEBOT_ACCOUNTS__{account.upper()}__"
    return {prefix + "API_KEY": "emulator-key", prefix + "SECRET": "emulator-secret"}


def urls_toml(urls: dict[str, str]) -> str:
    return "\n".join(f'"{k}" = "{v}"' for k, v in urls.items())


COMMON = """
[journal]
path = "{journal}"
[execution]
max_slippage_bps = 20
order_timeout_s = 5
[risk]
max_orders_per_minute = 120
"""


def deribit_book(emu: DeribitEmulator) -> None:
    # Inverse perp amounts are USD: 2M USD a level.
    emu.state.set_book(
        "BTC-PERPETUAL",
        [(59995.0, 2e6), (59990.0, 2e6), (59985.0, 2e6)],
        [(60005.0, 2e6), (60010.0, 2e6), (60015.0, 2e6)],
    )


def binance_book(emu: BinanceEmulator) -> None:
    emu.state.set_book(
        "BTCUSDT",
        [(59995.0, 50.0), (59990.0, 50.0), (59985.0, 50.0)],
        [(60005.0, 50.0), (60010.0, 50.0), (60015.0, 50.0)],
    )


def deribit_config(tmp: Path, emu: DeribitEmulator, mode: str, extra: str = "") -> Path:
    text = f"""
bot_id = "e2e-deribit-{mode}"
{COMMON.format(journal=tmp / "journal.sqlite")}
[engine]
hedge_view = "coin"
greeks_source = "both"
greeks_divergence_tol = 0.05
stale_after_s = 10
reconcile_interval_s = 3
position_poll_s = 1
[accounts.deribit]
exchange = "deribit"
mode = "{mode}"
request_timeout_s = 2
retry_base_s = 0.05
retry_max_s = 0.2
[accounts.deribit.urls]
{urls_toml(emu.config_urls())}
[hedge.BTC]
account = "deribit"
instrument = "{PERP_D}"
unit = "coin"
policy = {{ kind = "band", band = 0.2 }}
{extra}
"""
    path = tmp / f"deribit-{mode}.toml"
    path.write_text(text)
    return path


def binance_sim_config(tmp: Path, emu: BinanceEmulator) -> Path:
    text = f"""
bot_id = "e2e-binance"
{COMMON.format(journal=tmp / "journal.sqlite")}
[engine]
hedge_view = "coin"
stale_after_s = 10
reconcile_interval_s = 2
position_confirm_s = 3
[sim]
seed = 5
speed = 1.0
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.6
jump_intensity = 0.0
[accounts.sim]
exchange = "sim"
[accounts.binance]
exchange = "binanceusdm"
mode = "testnet"
request_timeout_s = 2
retry_base_s = 0.05
retry_max_s = 0.2
[accounts.binance.urls]
{urls_toml(emu.config_urls())}
# The options are held on the (simulated) options account, the hedge on Binance: one book.
[[positions]]
account = "sim"
underlying = "BTC"
kind = "option"
settlement = "linear"
option_type = "call"
strike = 60_000
expiry_days = 30
qty = -10
[hedge.BTC]
account = "binance"
instrument = "{PERP_B}"
unit = "coin"
policy = {{ kind = "band", band = 0.3 }}
"""
    path = tmp / "binance.toml"
    path.write_text(text)
    return path


def settled_after(d: Daemon, n_before: int) -> dict[str, Any] | None:
    """The newest hedge.settled after the first n_before, if it left the delta in band."""
    settled = d.named("hedge.settled")[n_before:]
    return settled[-1] if settled and settled[-1]["inside_band"] else None


def emulator_position(emu: Any, venue_id: str) -> float:
    pos = emu.state.positions.get(venue_id)
    return float(pos.qty) if pos is not None else 0.0


# ---- testnet: Deribit inverse perp hedging coin-settled options ---------------------------------


async def test_deribit_testnet_hedges_coin_settled_options_with_the_inverse_perp(
    tmp_path: Path,
) -> None:
    emu = await DeribitEmulator().start()
    try:
        deribit_book(emu)
        emu.state.set_position("BTC-1JAN30-60000-C", 10.0)  # long 10 calls, ~ +2.9 BTC delta
        cfg = deribit_config(tmp_path, emu, "testnet")
        async with running(cfg, **keys("deribit")) as d:
            mode = await d.wait_for("account.mode", lambda: d.named("account.mode"))
            assert mode[0]["mode"] == "testnet" and mode[0]["account"] == "deribit"
            await d.wait_for("a hedge back into the band", lambda: settled_after(d, 0))
            held = emulator_position(emu, "BTC-PERPETUAL")
            # Sold about the options' premium-adjusted delta, in USD contracts of 10.
            assert -3.5 * 60_000 < held < -2.4 * 60_000, held
            sent = d.named("order.sent")
            assert sent and all(s["client_id"].startswith("hb") for s in sent)
            # Deribit takes the client id as the label: every order at the venue carries one.
            labels = {o.client_id for o in emu.state.orders.values()}
            assert labels == {s["client_id"] for s in sent}
            # No position stream on Deribit: positions are polled by REST instead.
            polls = [r for r in emu.state.requests if r.endswith("/private/get_positions")]
            await d.wait_for(
                "more position polls",
                lambda: (
                    len([r for r in emu.state.requests if r.endswith("/private/get_positions")])
                    > len(polls) + 2
                ),
            )
            # greeks_source = both: the venue's delta (0.62 - 0.2 a contract) differs from ours
            # by far more than 5 %, so an alert says so.
            div = await d.wait_for("greeks.diverged", lambda: d.named("greeks.diverged"))
            assert div[0]["venue_delta_coin"] == pytest.approx(4.2)
            assert 2.4 < div[0]["own_delta_coin"] < 3.5
            # The portfolio moves (more calls bought by hand): the daemon hedges again.
            n = len(d.named("hedge.settled"))
            emu.state.set_position("BTC-1JAN30-60000-C", 15.0)
            await d.wait_for("the second hedge", lambda: settled_after(d, n))
            assert emulator_position(emu, "BTC-PERPETUAL") < held - 0.8 * 60_000
        summary = d.named("daemon.summary")
        assert len(summary) == 1 and abs(summary[0]["delta"]["BTC"]["delta_coin"]) <= 0.2 + 0.01
    finally:
        await emu.stop()


# ---- paper: live public data from the exchange, fills simulated, nothing sent --------------------


async def test_paper_mode_on_a_real_exchange_simulates_fills_against_the_live_book(
    tmp_path: Path,
) -> None:
    emu = await DeribitEmulator().start()
    try:
        deribit_book(emu)
        extra = f"""
[[positions]]
account = "deribit"
symbol = "{OPTION_D}"
qty = 10
"""
        cfg = deribit_config(tmp_path, emu, "paper", extra)
        async with running(cfg) as d:  # no keys at all
            await d.wait_for("a paper hedge", lambda: settled_after(d, 0))
            fills = d.named("order.fill")
            assert fills and all(f["price"] in (59995.0, 59990.0, 59985.0) for f in fills)
            mode = d.named("account.mode")[0]
            assert mode["mode"] == "paper" and mode["venue"] == "PaperVenue"
        assert emu.state.orders == {}  # nothing reached the exchange
        assert not [r for r in emu.state.requests if "/private/" in r]
        summary = d.named("daemon.summary")[0]
        assert abs(summary["delta"]["BTC"]["delta_coin"]) <= 0.2 + 0.01
        assert summary["fills"] == len(fills)
    finally:
        await emu.stop()


# ---- testnet: Binance USD-M linear perp hedging options held on another account ----------------


async def test_binance_testnet_two_accounts_one_book_and_network_faults(tmp_path: Path) -> None:
    emu = await BinanceEmulator().start()
    try:
        binance_book(emu)
        emu.state.set_position("BTCUSDT", 1.0)  # already long 1 BTC on Binance
        cfg = binance_sim_config(tmp_path, emu)
        async with running(cfg, **keys("binance")) as d:
            first = await d.wait_for(
                "the first decision to trade",
                lambda: next((x for x in d.named("hedge.decision") if x.get("trade")), None),
            )
            # One book: -10 short calls on the sim account (about -5.3 BTC) plus +1 BTC held on
            # Binance, both counted in one delta for BTC.
            assert -4.9 < first["delta_coin"] < -3.8, first
            await d.wait_for("the first hedge", lambda: settled_after(d, 0))
            held = emulator_position(emu, "BTCUSDT")
            assert 4.8 < held < 5.9, held  # what the sim account's calls need, not 1 more

            # 1. The websockets drop mid-stream; hedging carries on over fresh sockets.
            n = len(d.named("hedge.settled"))
            assert await emu.drop_websockets() >= 1
            await d.wait_for("a stream error", lambda: d.named("stream.error"))
            await d.wait_for("streams back", lambda: d.named("stream.recovered"))
            # Manual trades move the position beyond both our view and the last one the venue
            # agreed on (each further than the last): a read in between would be taken for a
            # read lagging behind our own fills (see Engine._lagging_read).
            emu.state.set_position("BTCUSDT", held + 2.0)  # a manual trade elsewhere
            await d.wait_for("a hedge after the reconnect", lambda: settled_after(d, n))
            assert abs(emulator_position(emu, "BTCUSDT") - held) < 0.3 + 0.01

            # 2. HTTP 429 and 502: retried, no crash, the next hedge still happens.
            n = len(d.named("hedge.settled"))
            emu.faults.fail_next(429)
            emu.faults.fail_next(502)
            await d.wait_for("both errors served", lambda: not emu.faults.http_errors)
            emu.state.set_position("BTCUSDT", held + 2.5)
            await d.wait_for("a hedge after 429/502", lambda: settled_after(d, n))

            # 3. A create accepted whose answer never comes: looked up by client id, never
            # sent twice; exactly one order exists for that intent and the daemon carries on.
            n_sent = len(d.named("order.sent"))
            emu.faults.hang_creates = 1
            emu.state.set_position("BTCUSDT", held + 3.0)
            sent = await d.wait_for(
                "the hedge whose answer is lost",
                lambda: d.named("order.sent")[n_sent:] or None,
            )
            cid = sent[0]["client_id"]
            await d.wait_for(
                "the lost order resolved",
                lambda: [
                    e
                    for e in d.events
                    if e.get("client_id") == cid
                    and e.get("event") in ("order.resolved", "order.done")
                ],
                limit_s=90,
            )
            assert len(emu.state.find_by_client_id(cid)) == 1
            posts = [r for r in emu.state.requests if r == "POST /fapi/v1/order"]
            assert len(posts) == len({o.client_id for o in emu.state.orders.values()})
            await d.wait_for(
                "back in the band",
                lambda: abs(emulator_position(emu, "BTCUSDT") - held) < 0.3 + 0.01,
            )
            n = len(d.named("hedge.settled"))
            emu.state.set_position("BTCUSDT", held + 3.5)
            await d.wait_for("the daemon carries on", lambda: settled_after(d, n))
        assert d.named("daemon.summary")[0]["open_orders_left"] == 0
    finally:
        await emu.stop()


async def test_binance_position_stream_lies_and_goes_silent(tmp_path: Path) -> None:
    emu = await BinanceEmulator().start()
    try:
        binance_book(emu)
        cfg = binance_sim_config(tmp_path, emu)
        async with running(cfg, **keys("binance")) as d:
            await d.wait_for("the first hedge", lambda: settled_after(d, 0))
            held = emulator_position(emu, "BTCUSDT")
            await asyncio.sleep(3)  # let the fill settle window pass

            # 1. The stream reads 0 while REST holds the hedge: no order comes from the bad read.
            orders = len(emu.state.orders)
            sent = len(d.named("order.sent"))
            emu.faults.stream_position["BTCUSDT"] = 0.0
            emu.state.emit("position", "BTCUSDT")  # the venue pushes its (wrong) position
            await d.wait_for(
                "the disagreement noticed", lambda: d.named("position.stream_disagrees")
            )
            await asyncio.sleep(6)  # several decisions and one REST reconciliation later
            assert len(emu.state.orders) == orders
            assert len(d.named("order.sent")) == sent
            assert emulator_position(emu, "BTCUSDT") == held
            del emu.faults.stream_position["BTCUSDT"]

            # 2. The position stream goes silent (orders and market data still flow). The next
            # hedge fills but its position never comes: trading halts.
            emu.faults.mute_positions = True
            emu.state.set_position("BTCUSDT", held + 2.0)  # seen by REST only
            halted = await d.wait_for(
                "trading.halted on the silent stream",
                lambda: [
                    e
                    for e in d.named("trading.halted")
                    if "silent:binance:positions" in e["reason"]
                ],
            )
            assert halted
            await d.wait_for("stream.silent", lambda: d.named("stream.silent"))
            # While halted, a drift seen by REST sends nothing.
            await asyncio.sleep(1)
            orders = len(emu.state.orders)
            emu.state.set_position("BTCUSDT", held + 3.0)
            await d.wait_for(
                "the drift seen by REST",
                lambda: (
                    d.named("reconcile.position_diff")[-1]["venue"] == pytest.approx(held + 3.0)
                ),
            )
            await asyncio.sleep(3)
            assert len(emu.state.orders) == orders

            # 3. The stream speaks again: after a REST reconcile trading resumes and hedges.
            n = len(d.named("hedge.settled"))
            resumed_before = len(d.named("trading.resumed"))
            emu.faults.mute_positions = False
            emu.state.emit("position", "BTCUSDT")
            await d.wait_for(
                "trading.resumed", lambda: len(d.named("trading.resumed")) > resumed_before
            )
            await d.wait_for("the hedge after recovery", lambda: settled_after(d, n))
            assert len(emu.state.orders) > orders
            assert abs(emulator_position(emu, "BTCUSDT") - held) < 0.3 + 0.01
    finally:
        await emu.stop()


async def test_an_unreachable_exchange_at_start_is_one_clear_error(tmp_path: Path) -> None:
    """Nothing listens where the config points (the emulator is gone): the reads are retried,
    then the daemon exits 1 with one line saying why, its connections closed (no traceback, no
    ccxt warning about an unclosed session); systemd's Restart=on-failure tries again."""
    emu = await DeribitEmulator().start()
    cfg = deribit_config(tmp_path, emu, "testnet")
    await emu.stop()
    daemon = await Daemon(cfg, clean_env(**keys("deribit"))).start()
    assert daemon.proc is not None
    code = await asyncio.wait_for(daemon.proc.wait(), 60)
    await daemon.stop()
    out, err = daemon.tail(), "\n".join(daemon.stderr)
    assert code == 1, out
    assert "hedgebot run: could not start: VenueTransient" in err, out
    assert daemon.named("daemon.start_failed"), out
    assert "Traceback" not in err and "Unclosed" not in err and "close()" not in err, err
