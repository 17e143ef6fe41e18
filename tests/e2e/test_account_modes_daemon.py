"""Position and margin mode checked at start against the config, through `python -m bot run`
on a testnet account pointed at the Binance emulator (ccxt reads the real endpoints)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from tests.e2e.test_ccxt_daemon import binance_book, binance_sim_config, keys, running
from tests.emulator import BinanceEmulator
from tests.helpers import ROOT, clean_env

ACCOUNT = '[accounts.binance]\nexchange = "binanceusdm"\nmode = "testnet"\n'


def config(tmp: Path, emu: BinanceEmulator, modes: str) -> Path:
    path = binance_sim_config(tmp, emu)
    text = path.read_text()
    assert ACCOUNT in text
    path.write_text(text.replace(ACCOUNT, ACCOUNT + modes, 1))
    return path


async def run_refused(cfg: Path) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        "run",
        "--config",
        str(cfg),
        "--log-format",
        "json",
        cwd=ROOT,
        env=clean_env(**keys("binance")),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    return int(proc.returncode or 0), out.decode() + err.decode()


async def test_hedge_mode_account_with_oneway_config_refuses_to_start(tmp_path: Path) -> None:
    emu = await BinanceEmulator().start()
    try:
        binance_book(emu)
        emu.dual_side_position = True  # the account was switched to hedge mode at the exchange
        code, text = await run_refused(config(tmp_path, emu, 'position_mode = "oneway"\n'))
        assert code == 2, text
        assert "accounts.binance.position_mode" in text and "'hedge'" in text, text
        assert "never switches it" in text
        assert not emu.state.orders  # nothing was sent
    finally:
        await emu.stop()


async def test_isolated_margin_with_cross_config_refuses_to_start(tmp_path: Path) -> None:
    emu = await BinanceEmulator().start()
    try:
        binance_book(emu)
        emu.margin_type = "isolated"
        cfg = config(tmp_path, emu, 'position_mode = "oneway"\nmargin_mode = "cross"\n')
        code, text = await run_refused(cfg)
        assert code == 2, text
        assert "accounts.binance.margin_mode" in text and "'isolated'" in text, text
        assert "BTC/USDT:USDT" in text
        assert not emu.state.orders
    finally:
        await emu.stop()


async def test_matching_modes_start_and_hedge(tmp_path: Path) -> None:
    emu = await BinanceEmulator().start()
    try:
        binance_book(emu)
        cfg = config(tmp_path, emu, 'position_mode = "oneway"\nmargin_mode = "cross"\n')
        async with running(cfg, **keys("binance")) as d:
            checked = await d.wait_for(
                "both modes checked", lambda: d.named("venue.mode_checked")[1:]
            )
            modes = {k: e[k] for e in d.named("venue.mode_checked") for k in e if "_mode" in k}
            assert modes == {"position_mode": "oneway", "margin_mode": "cross"}, checked
            await d.wait_for("a decision", lambda: d.named("hedge.decision"))
    finally:
        await emu.stop()
