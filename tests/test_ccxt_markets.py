"""Market mapping from recorded exchange payloads, parsed by the real ccxt exchange classes.

The fixtures are instrument listings as each exchange's public endpoint returns them (shapes from
the exchanges' docs and ccxt's own inline samples). A replay transport stands in for HTTP on the
exchange instance, so ccxt's own fetch_markets/parse_market code produces the markets we map.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import ccxt.async_support as ccxt_async
import pytest

from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.venues.ccxt_markets import (
    DECIMAL_PLACES,
    TICK_SIZE,
    instrument_from_market,
    instruments_from_markets,
    precision_step,
)

FIXTURES = Path(__file__).parent / "fixtures" / "ccxt"


def _load(name: str) -> Any:
    return json.loads((FIXTURES / name).read_text())


def _replay(responses: dict[str, Any]) -> Any:
    """An exchange.fetch replacement answering by URL path (+ one query value when keyed)."""

    async def fetch(url: str, method: str = "GET", headers: Any = None, body: Any = None) -> Any:
        parsed = urlparse(url)
        query = {k: v[0] for k, v in parse_qs(parsed.query).items()}
        for key, response in responses.items():
            path, _, selector = key.partition("?")
            if not parsed.path.endswith(path):
                continue
            if selector:
                name, _, value = selector.partition("=")
                if query.get(name) != value:
                    continue
            return response
        raise AssertionError(f"no recorded response for {method} {url}")

    return fetch


async def _markets(exchange_id: str, responses: dict[str, Any], options: dict[str, Any]) -> Any:
    exchange = getattr(ccxt_async, exchange_id)({"options": options})
    exchange.fetch = _replay(responses)
    try:
        markets = await exchange.fetch_markets()
        return markets, exchange.precisionMode
    finally:
        await exchange.close()


async def _instruments(
    exchange_id: str, responses: dict[str, Any], **options: Any
) -> dict[str, Instrument]:
    markets, mode = await _markets(exchange_id, responses, options)
    return instruments_from_markets(markets, mode, exchange_id)


async def test_deribit_inverse_perp_future_and_coin_settled_options() -> None:
    got = await _instruments(
        "deribit", {"public/get_instruments": _load("deribit_get_instruments.json")}
    )
    perp = got["BTC/USD:BTC"]
    # Deribit amounts are USD: one contract = 1 USD, ccxt's contractSize 10 is the lot.
    assert perp.kind is Kind.PERP and perp.settlement is Settlement.INVERSE
    assert perp.expiry_ms is None  # Deribit's year-3000 expiry on a perp is dropped
    assert (perp.contract_size, perp.amount_step, perp.min_amount) == (1.0, 10.0, 10.0)
    assert perp.price_step == 0.5 and perp.min_cost == 10.0  # ccxt leaves cost.min empty
    assert (perp.maker_fee, perp.taker_fee) == (0.0, 0.0005)

    fut = got["BTC/USD:BTC-250627"]
    assert fut.kind is Kind.FUTURE and fut.expiry_ms == 1751011200000
    assert fut.maker_fee == -0.0001  # rebates survive

    call = got["BTC/USD:BTC-250627-100000-C"]
    assert call.kind is Kind.OPTION and call.settlement is Settlement.INVERSE
    assert (call.strike, call.option_type) == (100000.0, OptionType.CALL)
    assert call.contract_size == 1.0 and call.amount_step == 0.1 and call.min_cost == 0.0
    assert got["ETH/USD:ETH-250606-3000-P"].option_type is OptionType.PUT

    linear = got["BTC/USDC:USDC"]
    assert linear.settlement is Settlement.LINEAR and linear.contract_size == 0.001
    assert linear.quote == "USDC" and linear.min_cost == 0.0
    # combos are not traded by the core
    assert all("FS" not in s for s in got)


async def test_binanceusdm_linear_perp_and_quarterly() -> None:
    got = await _instruments(
        "binanceusdm", {"fapi/v1/exchangeInfo": _load("binanceusdm_exchangeInfo.json")}
    )
    perp = got["BTC/USDT:USDT"]
    assert perp.kind is Kind.PERP and perp.settlement is Settlement.LINEAR
    assert (perp.amount_step, perp.price_step, perp.min_amount) == (0.001, 0.1, 0.001)
    assert perp.min_cost == 100.0 and perp.contract_size == 1.0 and perp.quote == "USDT"
    quarterly = got["ETH/USDT:USDT-250627"]
    assert quarterly.kind is Kind.FUTURE and quarterly.expiry_ms == 1751011200000
    assert quarterly.price_step == 0.01 and quarterly.min_cost == 20.0


async def test_okx_linear_and_inverse_swaps_and_options() -> None:
    recorded = _load("okx_instruments.json")
    got = await _instruments(
        "okx",
        {
            "public/instruments?instType=SWAP": recorded["SWAP"],
            "public/instruments?instType=OPTION": recorded["OPTION"],
        },
        fetchMarkets={"types": ["swap", "option"]},
        defaultUnderlying=["BTC-USD"],
    )
    linear = got["BTC/USDT:USDT"]
    assert linear.settlement is Settlement.LINEAR and linear.contract_size == 0.01
    assert linear.amount_step == 0.01 and linear.min_amount == 0.01 and linear.min_cost == 0.0
    inverse = got["BTC/USD:BTC"]
    # OKX counts inverse swaps in contracts of 100 USD; min notional derived: 1 x 100 USD.
    assert inverse.settlement is Settlement.INVERSE and inverse.contract_size == 100.0
    assert inverse.amount_step == 1.0 and inverse.min_cost == 100.0
    option = got["BTC/USD:BTC-250627-100000-C"]
    assert option.kind is Kind.OPTION and option.settlement is Settlement.INVERSE
    assert option.strike == 100000.0 and option.option_type is OptionType.CALL
    assert option.price_step == 0.0005 and option.expiry_ms == 1751011200000


async def test_bybit_linear_perp_and_usdc_option() -> None:
    recorded = _load("bybit_instruments_info.json")
    got = await _instruments(
        "bybit",
        {
            "v5/market/instruments-info?category=linear": recorded["linear"],
            "v5/market/instruments-info?category=option": recorded["option"],
        },
        fetchMarkets={"types": ["linear", "option"], "options": ["BTC"]},
    )
    perp = got["BTC/USDT:USDT"]
    assert perp.kind is Kind.PERP and perp.amount_step == 0.001 and perp.min_cost == 5.0
    # Bybit options are quoted in USD and settled in USDC: linear, plain Black-Scholes delta.
    option = got["BTC/USD:USDC-250627-100000-C"]
    assert option.settlement is Settlement.LINEAR and option.quote == "USD"
    assert option.amount_step == 0.01 and option.price_step == 5.0
    assert option.strike == 100000.0 and option.expiry_ms == 1751011200000


def test_precision_modes() -> None:
    assert precision_step(0.001, TICK_SIZE) == 0.001
    assert precision_step("0.5", TICK_SIZE) == 0.5
    assert precision_step(3, DECIMAL_PLACES) == pytest.approx(0.001)
    assert precision_step(None, TICK_SIZE) is None
    market = {
        "symbol": "BTC/USDT",
        "type": "spot",
        "base": "BTC",
        "quote": "USDT",
        "precision": {"amount": 5, "price": 2},
        "limits": {"amount": {"min": 0.00001}, "cost": {"min": 10}},
        "maker": 0.001,
        "taker": 0.001,
    }
    spot = instrument_from_market(market, DECIMAL_PLACES)
    assert spot.kind is Kind.SPOT and spot.amount_step == pytest.approx(1e-5)
    assert spot.price_step == pytest.approx(0.01) and spot.min_cost == 10.0


def test_recorded_static_market_strings_and_inactive_markets_skipped() -> None:
    # ccxt's static test markets carry numbers as strings.
    market = {
        "symbol": "ETH/USD:ETH",
        "type": "swap",
        "base": "ETH",
        "quote": "USD",
        "settle": "ETH",
        "inverse": True,
        "linear": False,
        "contractSize": "1",
        "precision": {"amount": "1", "price": "0.05"},
        "limits": {"amount": {"min": "1"}, "cost": {}},
        "active": True,
    }
    got = instruments_from_markets([market, {**market, "symbol": "X", "active": False}], TICK_SIZE)
    assert list(got) == ["ETH/USD:ETH"]
    assert got["ETH/USD:ETH"].min_cost == 1.0 and got["ETH/USD:ETH"].price_step == 0.05
