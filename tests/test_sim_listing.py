"""What the simulator lists: symbols, steps, expiries, fees."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.instruments import Kind, OptionType, Settlement
from bot.venues.sim.listing import (
    build_listing,
    coin_amount_step,
    expiry_ms_after,
    format_symbol,
    parse_symbol,
    price_tick,
    settle_currency,
    symbol_for,
)

START = int(datetime(2026, 1, 1, 12, 0, tzinfo=UTC).timestamp() * 1000)
CFG = SimConfig(
    underlyings={"BTC": SimUnderlying(price=60_000.0), "ETH": SimUnderlying(price=3_000.0)},
    maker_fee=0.0001,
    taker_fee=0.0004,
)


def pos(**kw: object) -> PositionConfig:
    return PositionConfig.model_validate({"qty": 1.0, **kw})


def test_default_listing() -> None:
    listing = build_listing(CFG, [], START)
    assert sorted(listing) == sorted(
        ["BTC/USDT", "BTC/USDT:USDT", "BTC/USD:BTC", "ETH/USDT", "ETH/USDT:USDT", "ETH/USD:ETH"]
    )
    lin = listing["BTC/USDT:USDT"]
    assert (lin.kind, lin.settlement, lin.contract_size) == (Kind.PERP, Settlement.LINEAR, 1.0)
    assert (lin.amount_step, lin.min_amount, lin.price_step) == (0.001, 0.001, 0.1)
    assert (lin.maker_fee, lin.taker_fee) == (0.0001, 0.0004)
    inv = listing["BTC/USD:BTC"]
    assert (inv.kind, inv.settlement, inv.contract_size, inv.amount_step) == (
        Kind.PERP,
        Settlement.INVERSE,
        10.0,
        1.0,
    )
    assert listing["BTC/USDT"].kind is Kind.SPOT
    assert listing["ETH/USDT:USDT"].amount_step == 0.01
    assert listing["ETH/USDT:USDT"].price_step == 0.01


@pytest.mark.parametrize(
    ("price", "step", "tick"),
    [(60_000.0, 0.001, 0.1), (3_000.0, 0.01, 0.01), (150.0, 0.1, 0.001), (0.1, 1.0, 1e-6)],
)
def test_steps_scale_with_price(price: float, step: float, tick: float) -> None:
    assert coin_amount_step(price) == pytest.approx(step)
    assert price_tick(price) == pytest.approx(tick)


def test_expiry_is_0800_utc_and_in_the_future() -> None:
    exp = expiry_ms_after(START, 30)
    dt = datetime.fromtimestamp(exp / 1000, tz=UTC)
    assert (dt.year, dt.month, dt.day, dt.hour, dt.minute) == (2026, 1, 31, 8, 0)
    # 12:00 + 0.1 day is still the same date, whose 08:00 has passed: the next day.
    soon = datetime.fromtimestamp(expiry_ms_after(START, 0.1) / 1000, tz=UTC)
    assert (soon.day, soon.hour) == (2, 8)


def test_described_positions_are_listed() -> None:
    positions = [
        pos(underlying="BTC", kind="future", expiry_days=30),
        pos(underlying="BTC", kind="future", settlement="inverse", expiry_days=30),
        pos(underlying="BTC", kind="option", option_type="call", strike=65_000, expiry_days=30),
        pos(
            underlying="BTC",
            kind="option",
            settlement="inverse",
            option_type="put",
            strike=55_000.5,
            expiry_days=30,
        ),
    ]
    symbols = [symbol_for(p, START) for p in positions]
    assert symbols == [
        "BTC/USDT:USDT-260131",
        "BTC/USD:BTC-260131",
        "BTC/USDC:USDC-260131-65000-C",
        "BTC/USD:BTC-260131-55000.5-P",
    ]
    listing = build_listing(CFG, positions, START)
    assert set(symbols) <= set(listing)
    call = listing["BTC/USDC:USDC-260131-65000-C"]
    assert call.kind is Kind.OPTION and call.option_type is OptionType.CALL
    assert (call.strike, call.contract_size, call.quote) == (65_000.0, 1.0, "USDC")
    assert settle_currency(call) == "USDC"
    put = listing["BTC/USD:BTC-260131-55000.5-P"]
    assert put.is_inverse and put.price_step == 0.0001 and settle_currency(put) == "BTC"
    assert put.expiry_ms == expiry_ms_after(START, 30)
    fut = listing["BTC/USD:BTC-260131"]
    assert fut.kind is Kind.FUTURE and fut.contract_size == 10.0


def test_positions_by_symbol() -> None:
    assert symbol_for(pos(symbol="BTC/USD:BTC"), START) == "BTC/USD:BTC"
    # A dated symbol the simulator can parse is listed on demand, in canonical spelling.
    p = pos(symbol="ETH/USDC:USDC-260327-3000.0-P")
    assert symbol_for(p, START) == "ETH/USDC:USDC-260327-3000-P"
    assert "ETH/USDC:USDC-260327-3000-P" in build_listing(CFG, [p], START)
    with pytest.raises(ValueError):
        symbol_for(pos(symbol="BTC-PERPETUAL"), START)
    with pytest.raises(ValueError):
        build_listing(CFG, [pos(symbol="DOGE/USDT:USDT")], START)


@pytest.mark.parametrize(
    "symbol",
    [
        "BTC/USDT",
        "BTC/USDT:USDT",
        "BTC/USD:BTC",
        "BTC/USDT:USDT-260131",
        "BTC/USD:BTC-260131",
        "BTC/USDC:USDC-260131-65000-C",
        "BTC/USD:BTC-260131-0.25-P",
    ],
)
def test_parse_format_round_trip(symbol: str) -> None:
    spec = parse_symbol(symbol)
    assert spec is not None and format_symbol(spec) == symbol


@pytest.mark.parametrize(
    "symbol", ["BTC/EUR", "BTC/USDC:USDC", "BTC/USD:ETH", "BTC/USDT:USDT-260131-1-C", "x"]
)
def test_parse_rejects_other_schemes(symbol: str) -> None:
    assert parse_symbol(symbol) is None
