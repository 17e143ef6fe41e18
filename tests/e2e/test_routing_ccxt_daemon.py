"""Routing through `python -m bot run` against two exchange emulators (the real ccxt Binance
USD-M and Deribit classes): funding rates read through ccxt decide where an order goes, the
cheaper venue takes it up to its position limit, the other the rest; both venues' books of
record show it."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.test_ccxt_daemon import (
    COMMON,
    binance_book,
    deribit_book,
    emulator_position,
    keys,
    running,
    settled_after,
    urls_toml,
)
from tests.emulator import BinanceEmulator, DeribitEmulator

pytestmark = pytest.mark.slow

LIMIT = 3.0  # coin, on Binance


def config(tmp: Path, binance: BinanceEmulator, deribit: DeribitEmulator) -> Path:
    accounts = "\n".join(
        f"""
[accounts.{name}]
exchange = "{exchange}"
mode = "testnet"
request_timeout_s = 2
retry_base_s = 0.05
retry_max_s = 0.2
[accounts.{name}.urls]
{urls_toml(emu.config_urls())}
"""
        for name, exchange, emu in (
            ("binance", "binanceusdm", binance),
            ("deribit", "deribit", deribit),
        )
    )
    text = f"""
bot_id = "e2e-route-ccxt"
{COMMON.format(journal=tmp / "journal.sqlite")}
[engine]
hedge_view = "coin"
stale_after_s = 10
reconcile_interval_s = 2
position_poll_s = 1
[routing]
holding_horizon_h = 8
[sim]
seed = 5
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.6
jump_intensity = 0.0
[accounts.sim]
exchange = "sim"
{accounts}
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
instrument = "BTC/USDT:USDT"
unit = "coin"
policy = {{ kind = "band", band = 0.3 }}
[[hedge.BTC.candidates]]
account = "deribit"
instrument = "BTC/USD:BTC"
max_position_usd = 1_000_000
[[hedge.BTC.candidates]]
account = "binance"
instrument = "BTC/USDT:USDT"
max_position_coin = {LIMIT}
"""
    path = tmp / "route-ccxt.toml"
    path.write_text(text)
    return path


async def test_funding_from_ccxt_routes_to_the_cheaper_venue_until_its_limit(
    tmp_path: Path,
) -> None:
    binance, deribit = await BinanceEmulator().start(), await DeribitEmulator().start()
    try:
        binance_book(binance)
        deribit_book(deribit)
        # Same fees and spreads; a long receives 5 bp per 8 h on Binance and pays 5 on Deribit.
        binance.state.markets["BTCUSDT"].funding_8h = -0.0005
        deribit.state.markets["BTC-PERPETUAL"].funding_8h = 0.0005
        cfg = config(tmp_path, binance, deribit)
        async with running(cfg, **keys("binance"), **keys("deribit")) as d:
            first = await d.wait_for(
                "the first decision to trade",
                lambda: next((x for x in d.named("hedge.decision") if x.get("trade")), None),
            )
            await d.wait_for("the hedge back into the band", lambda: settled_after(d, 0))
            await d.wait_for(
                "both orders settled",
                lambda: len(d.named("hedge.settled")) >= 2 or None,
            )
        route = first["route"]
        costs = {c["account"]: c for c in route["candidates"]}
        assert costs["binance"]["funding_rate"] == pytest.approx(-0.0005)
        assert costs["deribit"]["funding_rate"] == pytest.approx(0.0005)
        assert costs["binance"]["funding"] == costs["deribit"]["funding"] == "fresh"
        assert costs["binance"]["funding_bps"] == pytest.approx(-5.0)
        assert costs["deribit"]["funding_bps"] == pytest.approx(5.0)
        assert costs["binance"]["total_bps"] < costs["deribit"]["total_bps"]
        gap = first["gap_coin"]
        assert gap > LIMIT  # short calls: buy about 5 BTC
        chosen = [(g["account"], g["coin"]) for g in route["chosen"]]
        assert chosen == [("binance", LIMIT), ("deribit", pytest.approx(gap - LIMIT))]
        # the venues' books of record: the limit on Binance, the rest (USD contracts) on Deribit
        assert emulator_position(binance, "BTCUSDT") == pytest.approx(LIMIT)
        held_usd = emulator_position(deribit, "BTC-PERPETUAL")
        assert held_usd == pytest.approx((gap - LIMIT) * 60_000, rel=0.05, abs=20)
    finally:
        await binance.stop()
        await deribit.stop()
