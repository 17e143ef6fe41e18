"""Perpetual funding on the simulated exchange: every 8 hours since the epoch, each perp held
pays its rate on the notional at the mark (longs pay a positive rate, shorts receive), in the
settlement currency; nothing moves between funding times or at a zero rate."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.orders import OrderRequest, Side
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.settlement import FUNDING_INTERVAL_MS
from tests.helpers import ROOT, clean_env, run_bot

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z, a funding time
LINEAR = "BTC/USDT:USDT"
INVERSE = "BTC/USD:BTC"


def exchange(rate: float = 0.0001) -> SimExchange:
    cfg = SimConfig(
        underlyings={"BTC": SimUnderlying(price=60_000.0, vol=0.5, jump_intensity=0.0)},
        funding_rate=rate,
        balances={"USDT": 1_000_000.0, "BTC": 10.0},
    )
    positions = [
        PositionConfig(symbol=LINEAR, qty=2.0),
        PositionConfig(symbol=INVERSE, qty=-3_000.0),  # 10 USD a contract: short 30,000 USD
    ]
    return SimExchange.create(cfg, positions, T0 + 1)


def test_each_perp_pays_its_rate_on_the_notional_at_the_mark() -> None:
    ex = exchange(0.0001)
    usdt, btc = ex.ledger.balances["USDT"], ex.ledger.balances["BTC"]
    ex.tick(T0 + FUNDING_INTERVAL_MS - 60_000)
    assert (ex.ledger.balances["USDT"], ex.ledger.balances["BTC"]) == (usdt, btc)
    ex.tick(T0 + FUNDING_INTERVAL_MS + 1)
    lin, inv = ex.fair(LINEAR).mark, ex.fair(INVERSE).mark
    # Long 2 BTC linear pays 2 x mark x rate in USDT; short 30,000 USD inverse receives
    # 30,000 / mark x rate in BTC.
    assert ex.ledger.balances["USDT"] == pytest.approx(usdt - 2.0 * lin * 0.0001, rel=1e-12)
    assert ex.ledger.balances["BTC"] == pytest.approx(btc + 30_000.0 / inv * 0.0001, rel=1e-12)
    index = ex.quotes.index("BTC")
    paid = 2.0 * lin * 0.0001 - 30_000.0 / inv * 0.0001 * index
    assert ex.funding_paid_usd == pytest.approx(paid, rel=1e-9)


def test_a_negative_rate_pays_the_shorts_and_a_long_tick_pays_each_time_it_crossed() -> None:
    ex = exchange(-0.0002)
    usdt = ex.ledger.balances["USDT"]
    ex.tick(T0 + 2 * FUNDING_INTERVAL_MS + 5)  # two funding times in one tick
    lin = ex.fair(LINEAR).mark
    assert ex.ledger.balances["USDT"] == pytest.approx(usdt + 2 * 2.0 * lin * 0.0002, rel=1e-12)


def test_per_symbol_rates_and_no_funding_at_zero() -> None:
    ex = exchange(0.0)
    assert ex.next_funding_ms() is None
    usdt, btc = ex.ledger.balances["USDT"], ex.ledger.balances["BTC"]
    ex.tick(T0 + 3 * FUNDING_INTERVAL_MS)
    assert (ex.ledger.balances["USDT"], ex.ledger.balances["BTC"]) == (usdt, btc)
    assert ex.funding_paid_usd == 0.0


def test_a_symbol_rate_overrides_the_default_and_the_next_time_is_announced() -> None:
    cfg_rate = {"BTC/USD:BTC": 0.0}
    ex = exchange(0.0003)
    ex = SimExchange.create(
        ex.cfg.model_copy(update={"funding_rates": cfg_rate}),
        [PositionConfig(symbol=LINEAR, qty=1.0), PositionConfig(symbol=INVERSE, qty=-100.0)],
        T0 + 1,
    )
    assert ex.funding_rate(LINEAR) == 0.0003 and ex.funding_rate(INVERSE) == 0.0
    assert ex.next_funding_ms() == T0 + FUNDING_INTERVAL_MS
    btc = ex.ledger.balances["BTC"]
    ex.tick(T0 + FUNDING_INTERVAL_MS)
    assert ex.ledger.balances["BTC"] == btc  # the inverse perp's rate is 0
    assert ex.funding_paid_usd == pytest.approx(ex.fair(LINEAR).mark * 0.0003, rel=1e-12)


def backtest(tmp: Path, name: str, **env: str) -> dict[str, Any]:
    out = tmp / name
    config = str(ROOT / "config/backtest-straddle.toml")
    args = ["backtest", "--config", config, "--days", "2", "--paths", "1", "--jobs", "1"]
    code, _, err = run_bot(
        [*args, "--out", str(out)],
        timeout=300,
        env=clean_env(**env),
    )
    assert code == 0, err
    report: dict[str, Any] = json.loads((out / "report.json").read_text())
    return report


def test_a_backtest_pays_funding_on_its_hedge_and_attributes_it(tmp_path: Path) -> None:
    """The straddle's perp hedge pays funding through `hedgebot backtest`: the same decisions
    (funding moves USDT, not delta), a P&L lower by exactly what was paid, the attribution's
    funding part, and the same figures with the fast-forward off."""
    free = backtest(tmp_path, "free")
    paid = backtest(tmp_path, "paid", HEDGEBOT_SIM__FUNDING_RATE="0.0005")
    slow = backtest(
        tmp_path, "slow", HEDGEBOT_SIM__FUNDING_RATE="0.0005", HEDGEBOT_ENGINE__FAST_FORWARD="false"
    )
    f, p = free["summary"], paid["summary"]
    assert f["funding_usd"]["mean"] == 0.0
    funding = p["funding_usd"]["mean"]
    assert abs(funding) > 1.0, "a perp hedge held over six funding times pays or receives"
    assert p["orders"] == f["orders"] and p["fees_usd"] == f["fees_usd"]
    moved = p["hedged_pnl_usd"]["mean"] - f["hedged_pnl_usd"]["mean"]
    assert moved == pytest.approx(-funding, rel=1e-6)
    assert p["attribution_usd"]["funding"] == pytest.approx(-funding, rel=1e-9)
    assert slow["summary"]["funding_usd"] == p["funding_usd"]
    assert slow["summary"]["hedged_pnl_usd"] == p["hedged_pnl_usd"]


def test_the_next_funding_time_follows_orders_that_open_and_close_a_funded_perp() -> None:
    """Only the perps listed at a non-zero rate are looked at each tick: opening one by an
    order announces the next funding time, closing it takes it back."""
    update = {"funding_rates": {INVERSE: 0.0}, "partial_fill_rate": 0.0}
    cfg = exchange().cfg.model_copy(update=update)
    ex = SimExchange.create(cfg, [PositionConfig(symbol=INVERSE, qty=-100.0)], T0 + 1)
    assert ex.next_funding_ms() is None  # held at a zero rate
    now = T0 + 60_000
    ex.tick(now)
    step = ex.instruments[LINEAR].price_step
    buy = round(ex.fair(LINEAR).mark * 1.01 / step) * step
    ex.submit(OrderRequest("open", LINEAR, Side.BUY, 0.5, buy), now)
    assert ex.ledger.qty(LINEAR) == 0.5
    assert ex.next_funding_ms() == T0 + FUNDING_INTERVAL_MS
    sell = round(ex.fair(LINEAR).mark * 0.99 / step) * step
    ex.submit(OrderRequest("close", LINEAR, Side.SELL, 0.5, sell), now)
    assert ex.ledger.qty(LINEAR) == 0.0
    assert ex.next_funding_ms() is None
    usdt = ex.ledger.balances["USDT"]
    ex.tick(T0 + FUNDING_INTERVAL_MS)
    assert ex.ledger.balances["USDT"] == usdt and ex.funding_paid_usd == 0.0
