"""`hedgebot record` against the local exchange emulator (the real ccxt classes, pointed there by
the config's urls): it writes the live tickers as a file `backtest --data` replays."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from bot.backtest.data import load
from bot.io.record_cli import duration_s
from tests.emulator import BinanceEmulator
from tests.helpers import ROOT, clean_env


def _config(tmp: Path, emu: BinanceEmulator) -> Path:
    urls = "\n".join(f'"{k}" = "{v}"' for k, v in emu.config_urls().items())
    path = tmp / "record.toml"
    path.write_text(
        f"""
bot_id = "record-test"
[journal]
path = "{tmp / "journal.sqlite"}"
[sim.underlyings.BTC]
price = 60_000.0
[accounts.binance]
exchange = "binanceusdm"
mode = "testnet"
request_timeout_s = 2
retry_base_s = 0.05
retry_max_s = 0.2
[accounts.binance.urls]
{urls}
[hedge.BTC]
account = "binance"
instrument = "BTC/USDT:USDT"
unit = "coin"
policy = {{ kind = "band", band = 0.3 }}
"""
    )
    return path


async def _run(*args: str, keys: bool = True) -> tuple[int, str, str]:
    env = clean_env(
        HEDGEBOT_ACCOUNTS__BINANCE__API_KEY="emulator-key",
        HEDGEBOT_ACCOUNTS__BINANCE__SECRET="emulator-secret",
    )
    if not keys:
        env = clean_env()
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=ROOT,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), 120)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


@pytest.mark.parametrize("suffix", ["parquet", "csv"])
async def test_record_writes_tickers_that_backtest_replays(tmp_path: Path, suffix: str) -> None:
    emu = await BinanceEmulator().start()
    try:
        emu.state.set_book("BTCUSDT", [(59_990.0, 5.0)], [(60_010.0, 5.0)])
        cfg = _config(tmp_path, emu)
        out = tmp_path / f"btc.{suffix}"

        async def move() -> None:
            # The market moves while it records (once its stream is open): a later mid.
            for _ in range(1200):
                if emu.connections:
                    break
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.5)
            emu.state.set_book("BTCUSDT", [(61_990.0, 5.0)], [(62_010.0, 5.0)])

        mover = asyncio.ensure_future(move())
        code, stdout, stderr = await _run(
            "record",
            "--config",
            str(cfg),
            "--out",
            str(out),
            "--duration",
            "5s",
            "--every-ms",
            "200",
        )
        await mover
    finally:
        await emu.stop()
    assert code == 0, stderr
    assert f"rows to {out}" in stdout
    rec = load(out, ["BTC"])
    prices = rec.price["BTC"].tolist()
    assert len(prices) >= 5
    assert prices[0] == 60_000.0 and prices[-1] == 62_000.0
    gaps = [b - a for a, b in zip(rec.ts_ms["BTC"], rec.ts_ms["BTC"][1:], strict=False)]
    assert min(gaps) >= 150  # --every-ms thins the stream
    # The recording replays through the backtest, on the config's sim account.
    report_dir = tmp_path / "bt"
    code, _, stderr = await _run(
        "backtest",
        "--config",
        "config/paper.toml",
        "--data",
        str(out),
        "--tick-ms",
        "500",
        "--out",
        str(report_dir),
        keys=False,
    )
    assert code == 0, stderr
    report = json.loads((report_dir / "report.json").read_text())
    (path,) = report["per_path"]
    assert path["price_start"] == 60_000.0 and path["price_end"] == 62_000.0


def test_record_refuses_a_config_without_real_accounts(tmp_path: Path) -> None:
    code, _, stderr = asyncio.run(
        _run("record", "--config", "config/paper.toml", "--out", "x.csv", keys=False)
    )
    assert code == 2 and "no hedge instrument or position on a real exchange" in stderr


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90.0), ("90s", 90.0), ("30m", 1800.0), ("1h", 3600.0), ("2d", 172800.0)],
)
def test_durations(text: str, seconds: float) -> None:
    assert duration_s(text) == seconds


@pytest.mark.parametrize("text", ["0", "1w", "-5m", "h"])
def test_bad_durations(text: str) -> None:
    import argparse

    with pytest.raises(argparse.ArgumentTypeError, match="is not a duration > 0"):
        duration_s(text)
