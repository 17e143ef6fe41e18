"""Contract units per exchange, on recorded markets, through the real ccxt exchange classes.

The unified markets in tests/fixtures/ccxt/markets are ccxt's own recorded static markets
(trimmed, sources in the README there). They are loaded into real ccxt.pro exchange objects, a
CcxtVenue maps them, and the amount it would send is produced by the same code create_order
uses (our scaling, then ccxt's amount_to_precision). Amounts coming back go through ccxt's own
parse_order / parse_trade / parse_position on payloads in each exchange's wire format.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import ccxt.pro
import pytest

from bot.config import ConfigError
from bot.config_accounts import AccountConfig
from bot.core.instruments import Kind, Settlement
from bot.venues import ccxt_convert as convert
from bot.venues.ccxt_markets import (
    DECIMAL_PLACES,
    TICK_SIZE,
    ImplausibleMarket,
    lot_value_problems,
    map_market,
)
from bot.venues.ccxt_profiles import profile_for
from bot.venues.ccxt_venue import CcxtVenue
from tests.emulator import DeribitEmulator, ExchangeState
from tests.emulator.deribit import default_markets, linear_perp_market
from tests.helpers import ROOT, clean_env
from tests.test_ccxt_markets import _load, _markets

MARKETS = Path(__file__).parent / "fixtures" / "ccxt" / "markets"


def _recorded(exchange_id: str) -> dict[str, Any]:
    name = "binance" if exchange_id == "binanceusdm" else exchange_id
    data: dict[str, Any] = json.loads((MARKETS / f"{name}.json").read_text())
    return data


@asynccontextmanager
async def _venue(
    exchange_id: str,
    markets: dict[str, Any] | list[dict[str, Any]],
    precision_mode: int | None = None,
    required: frozenset[str] = frozenset(),
) -> AsyncIterator[CcxtVenue]:
    """A CcxtVenue over a real ccxt.pro exchange whose markets are the recorded ones (ccxt's
    load_markets keeps markets already set, so nothing goes to the network)."""
    exchange = getattr(ccxt.pro, exchange_id)()
    exchange.set_markets(markets)
    if precision_mode is not None:
        exchange.precisionMode = precision_mode  # the mode the market was recorded in
    venue = CcxtVenue(
        "acct",
        AccountConfig(exchange=exchange_id, mode="paper"),
        exchange=exchange,
        required=required,
    )
    try:
        await venue.load_instruments()
        yield venue
    finally:
        await exchange.close()


# exchange, symbol, book qty, contract value, lot, min amount (both in book contracts), and the
# amount ccxt is given for that qty (in the venue's own unit).
CASES = [
    # Deribit: linear perps and options in coin (0.001 BTC contracts), spot in coin.
    ("deribit", "BTC/USDT:USDT", 7.0, 0.001, 1.0, 1.0, 0.007),
    ("deribit", "BTC/USDT:USDT", 7.6, 0.001, 1.0, 1.0, 0.007),  # ccxt truncates to the step
    ("deribit", "BTC/USD:BTC-240126-39000-C", 0.3, 1.0, 0.1, 0.1, 0.3),
    ("deribit", "BTC/USDT", 0.0123, 1.0, 0.0001, 0.0001, 0.0123),
    # OKX: everything in contracts; the option's contract is ctVal 1 x ctMult 0.01 BTC.
    ("okx", "BTC/USDT:USDT", 2.5, 0.01, 0.1, 0.1, 2.5),
    ("okx", "BTC/USDT:USDT", 2.57, 0.01, 0.1, 0.1, 2.5),
    ("okx", "BTC/USD:BTC", 3.0, 100.0, 1.0, 1.0, 3.0),
    ("okx", "BTC/USD:BTC-241227-60000-P", 4.0, 0.01, 1.0, 1.0, 4.0),
    ("okx", "BTC/USDT", 0.001, 1.0, 1e-8, 1e-5, 0.001),
    # Bybit: linear in coin, inverse in 1-USD contracts, spot in coin.
    ("bybit", "BTC/USDT:USDT", 0.005, 1.0, 0.001, 0.001, 0.005),
    ("bybit", "BTC/USD:BTC", 100.0, 1.0, 1.0, 1.0, 100.0),
    ("bybit", "BTC/USDT", 0.00123, 1.0, 1e-6, 1.1e-5, 0.00123),
    # Binance USD-M, in the DECIMAL_PLACES mode the markets were recorded in: coin. (Its spot
    # twin is only used below: binanceusdm resolves BTC/USDT to the perp when ordering.)
    ("binanceusdm", "BTC/USDT:USDT", 0.002, 1.0, 0.001, 0.001, 0.002),
]


@pytest.mark.parametrize(("exchange_id", "symbol", "qty", "value", "lot", "minimum", "sent"), CASES)
async def test_recorded_market_units_and_amount_sent(
    exchange_id: str,
    symbol: str,
    qty: float,
    value: float,
    lot: float,
    minimum: float,
    sent: float,
) -> None:
    mode = DECIMAL_PLACES if exchange_id == "binanceusdm" else None
    async with _venue(exchange_id, _recorded(exchange_id), mode) as venue:
        instrument = (await venue.load_instruments())[symbol]
        assert instrument.contract_size == pytest.approx(value, rel=1e-12)
        assert instrument.amount_step == pytest.approx(lot, rel=1e-9)
        assert instrument.min_amount == pytest.approx(minimum, rel=1e-9)
        assert venue.venue_amount(symbol, qty) == pytest.approx(sent, rel=1e-12)


async def test_parsed_listings_inverse_futures_and_options_amount_sent() -> None:
    """Kinds the static recordings lack, from raw listings parsed by ccxt's fetch_markets."""
    deribit, _ = await _markets(
        "deribit", {"public/get_instruments": _load("deribit_get_instruments.json")}, {}
    )
    async with _venue("deribit", deribit) as venue:
        # Deribit inverse: a book contract is 1 USD, the amount is USD, lot 10.
        for symbol in ("BTC/USD:BTC", "BTC/USD:BTC-250627"):
            assert venue.per_contract(symbol) == 1.0
            assert venue.venue_amount(symbol, 120.0) == 120.0
            assert venue.venue_amount(symbol, 125.0) == 120.0
    recorded = _load("bybit_instruments_info.json")
    bybit, _ = await _markets(
        "bybit",
        {"v5/market/instruments-info?category=option": recorded["option"]},
        {"fetchMarkets": {"types": ["option"], "options": ["BTC"]}},
    )
    async with _venue("bybit", bybit) as venue:
        option = (await venue.load_instruments())["BTC/USD:USDC-250627-100000-C"]
        assert option.contract_size == 1.0 and option.amount_step == 0.01
        assert venue.venue_amount(option.symbol, 0.05) == 0.05
    binance, _ = await _markets(
        "binanceusdm", {"fapi/v1/exchangeInfo": _load("binanceusdm_exchangeInfo.json")}, {}
    )
    async with _venue("binanceusdm", binance) as venue:
        assert venue.venue_amount("ETH/USDT:USDT-250627", 0.0125) == 0.012
    okx_raw = _load("okx_instruments.json")
    okx, _ = await _markets(
        "okx",
        {"public/instruments?instType=OPTION": okx_raw["OPTION"]},
        {"fetchMarkets": {"types": ["option"]}, "defaultUnderlying": ["BTC-USD"]},
    )
    async with _venue("okx", okx) as venue:
        # The project's own OKX fixture: ctMult 0.01, so 0.01 BTC per contract.
        option = (await venue.load_instruments())["BTC/USD:BTC-250627-100000-C"]
        assert option.contract_size == 0.01 and venue.venue_amount(option.symbol, 3.0) == 3.0


async def test_parsed_listings_dated_futures_on_okx_and_bybit() -> None:
    okx_raw = _load("okx_instruments.json")
    okx, _ = await _markets(
        "okx",
        {"public/instruments?instType=FUTURES": okx_raw["FUTURES"]},
        {"fetchMarkets": {"types": ["future"]}},
    )
    async with _venue("okx", okx) as venue:
        got = await venue.load_instruments()
        inverse, linear = got["BTC/USD:BTC-250627"], got["BTC/USDT:USDT-250627"]
        assert inverse.kind is Kind.FUTURE and inverse.settlement is Settlement.INVERSE
        assert (inverse.contract_size, inverse.amount_step, inverse.min_cost) == (100.0, 1.0, 100.0)
        assert venue.venue_amount(inverse.symbol, 3.0) == 3.0  # OKX counts contracts
        assert (linear.contract_size, linear.amount_step) == (0.01, 0.1)
        assert venue.venue_amount(linear.symbol, 2.57) == 2.5
    recorded = _load("bybit_instruments_info.json")
    bybit, _ = await _markets(
        "bybit",
        {
            "v5/market/instruments-info?category=linear": recorded["linear"],
            "v5/market/instruments-info?category=inverse": recorded["inverse"],
        },
        {"fetchMarkets": {"types": ["linear", "inverse"]}},
    )
    async with _venue("bybit", bybit) as venue:
        got = await venue.load_instruments()
        for symbol in ("BTC/USD:BTC", "BTC/USD:BTC-250627"):  # inverse: 1-USD contracts
            assert got[symbol].settlement is Settlement.INVERSE
            assert (got[symbol].contract_size, got[symbol].amount_step) == (1.0, 1.0)
            assert venue.venue_amount(symbol, 250.0) == 250.0
        future = got["BTC/USDC:USDC-250627"]  # USDC-settled linear future, in coin
        assert future.kind is Kind.FUTURE and future.contract_size == 1.0
        assert venue.venue_amount(future.symbol, 0.0123) == 0.012


async def test_deribit_linear_amounts_read_back_as_book_contracts() -> None:
    async with _venue("deribit", _recorded("deribit")) as venue:
        ex = venue.exchange
        market = ex.market("BTC/USDT:USDT")
        order = ex.parse_order(
            {
                "order_id": "7",
                "label": "hb-1",
                "instrument_name": "BTC_USDT-PERPETUAL",
                "direction": "buy",
                "amount": 0.007,
                "filled_amount": 0.003,
                "price": 60000.0,
                "average_price": 60000.0,
                "order_state": "open",
                "order_type": "limit",
                "creation_timestamp": 1,
                "last_update_timestamp": 2,
            },
            market,
        )
        update = venue._order(order)
        assert update is not None and (update.amount, update.filled) == (7.0, 3.0)
        trade = ex.parse_trade(
            {
                "trade_id": "T1",
                "timestamp": 3,
                "price": 60000.0,
                "order_id": "7",
                "label": "hb-1",
                "instrument_name": "BTC_USDT-PERPETUAL",
                "direction": "buy",
                "amount": 0.003,
                "fee": 0.09,
                "fee_currency": "USDT",
                "liquidity": "T",
            },
            market,
        )
        fill = venue._fill(trade)
        assert fill is not None and fill.amount == 3.0 and fill.client_id == "hb-1"
        position = ex.parse_position(
            {
                "instrument_name": "BTC_USDT-PERPETUAL",
                "kind": "future",
                "size": -0.005,
                "direction": "sell",
                "average_price": 60000.0,
                "mark_price": 60000.0,
                "index_price": 60000.0,
                "size_currency": -0.005,
                "leverage": 50,
            },
            market,
        )
        reports = convert.positions([position], 1, "t", venue.per_contract)
        assert [(p.symbol, p.qty) for p in reports] == [("BTC/USDT:USDT", -5.0)]
        book = convert.order_book(
            {"symbol": "BTC/USDT:USDT", "bids": [[59999.0, 0.004]], "asks": [[60001.0, 0.012]]},
            1,
            per_contract=venue.per_contract("BTC/USDT:USDT"),
        )
        assert (book.bids[0].amount, book.asks[0].amount) == (4.0, 12.0)


async def test_okx_option_position_and_delta_are_per_001_btc_contract() -> None:
    async with _venue("okx", _recorded("okx")) as venue:
        ex = venue.exchange
        symbol = "BTC/USD:BTC-241227-60000-P"
        instrument = (await venue.load_instruments())[symbol]
        raw = {
            "instId": "BTC-USD-241227-60000-P",
            "instType": "OPTION",
            "pos": "-4",
            "posSide": "net",
            "mgnMode": "cross",
            "avgPx": "0.01",
            "markPx": "0.012",
            "uTime": "1",
            "cTime": "1",
        }
        reports = convert.positions([ex.parse_position(raw)], 1, "t", venue.per_contract)
        assert [(p.symbol, p.qty) for p in reports] == [(symbol, -4.0)]
        # -4 contracts of 0.01 BTC: the venue delta per contract is 1/100 of OKX's coin delta.
        ticker = convert.ticker(
            {"symbol": symbol, "info": {"markVol": "0.55", "delta": "-0.4"}}, 1, instrument, "okx"
        )
        assert ticker.venue_delta == pytest.approx(-0.004) and ticker.iv == 0.55


async def test_binance_market_recorded_in_decimal_places_is_refused_in_tick_mode() -> None:
    # Read in ccxt's current TICK_SIZE mode, "5 decimals" would be a 5 BTC lot.
    async with _venue("binanceusdm", _recorded("binanceusdm")) as venue:
        assert precision_mode_of(venue) == TICK_SIZE
        instruments = await venue.load_instruments()
        assert "BTC/USDT" not in instruments and "BTC/USDT:USDT" not in instruments
        [(field, value, rule)] = venue.refused["BTC/USDT"]
        assert field == "lot" and value == "lot 5 coin, min amount 1e-05 coin"
        assert "whole number of lots" in rule
    with pytest.raises(ConfigError) as caught:
        async with _venue(
            "binanceusdm", _recorded("binanceusdm"), required=frozenset({"BTC/USDT:USDT"})
        ):
            pass
    text = caught.value.render()
    assert "binanceusdm market 'BTC/USDT:USDT' lot" in text
    assert "lot 3 coin, min amount 0.001 coin" in text and "accounts.acct" in text


def precision_mode_of(venue: CcxtVenue) -> int:
    return int(venue.exchange.precisionMode)


def _market(**over: Any) -> dict[str, Any]:
    market: dict[str, Any] = {
        "symbol": "BTC/USDT:USDT",
        "type": "swap",
        "base": "BTC",
        "quote": "USDT",
        "settle": "USDT",
        "linear": True,
        "inverse": False,
        "contractSize": 1,
        "precision": {"amount": 0.001, "price": 0.1},
        "limits": {"amount": {"min": 0.001, "max": 1000}},
    }
    market.update(over)
    return market


@pytest.mark.parametrize(
    ("over", "field", "words"),
    [
        ({"contractSize": 0}, "contract_value", "between 1e-08 and 1e+08 coin"),
        ({"contractSize": -1}, "contract_value", "between"),
        (
            {"inverse": True, "linear": False, "symbol": "BTC/USD:BTC", "contractSize": 1e6},
            "contract_value",
            "between 0.01 and 10000 USD",
        ),
        ({"precision": {"amount": 0.3, "price": 0.1}}, "lot", "whole number of lots"),
        ({"precision": {"amount": 3, "price": 0.1}}, "lot", "whole number of lots"),
        (
            {"precision": {"amount": 5, "price": 0.1}, "limits": {"amount": {"max": 2}}},
            "lot",
            "maximum amount",
        ),
    ],
)
def test_implausible_markets_are_refused_with_their_numbers(
    over: dict[str, Any], field: str, words: str
) -> None:
    with pytest.raises(ImplausibleMarket) as caught:
        map_market(_market(**over), TICK_SIZE, profile_for("bybit"))
    assert caught.value.symbol == over.get("symbol", "BTC/USDT:USDT")
    assert any(f == field and words in rule for f, _, rule in caught.value.problems)


def test_plausible_market_and_lot_value_rule() -> None:
    mapped = map_market(_market(), TICK_SIZE, profile_for("bybit"))
    assert mapped.instrument.kind is Kind.PERP and mapped.venue_per_contract == 1.0
    assert lot_value_problems(mapped.instrument, 100_000.0) == []
    coarse = map_market(
        _market(precision={"amount": 1, "price": 0.1}, limits={"amount": {"min": 1}}),
        TICK_SIZE,
        profile_for("bybit"),
    ).instrument
    [(field, value, rule)] = lot_value_problems(coarse, 100_000.0)
    assert field == "lot" and "100000 USD" in value and "at most 50000 USD" in rule
    inverse = map_market(
        _market(symbol="BTC/USD:BTC", inverse=True, linear=False, contractSize=10),
        TICK_SIZE,
        profile_for("deribit"),
    )
    # Deribit inverse: 1-USD book contracts, the 10-USD contract size is the lot.
    assert inverse.instrument.settlement is Settlement.INVERSE
    assert (inverse.instrument.contract_size, inverse.instrument.amount_step) == (1.0, 10.0)


def test_amount_scaling_is_exact_both_ways() -> None:
    assert convert.to_venue_amount(3.0, 0.001) == 0.003
    assert convert.to_book_amount(0.003, 0.001) == 3.0
    assert convert.to_book_amount(0.1 + 0.2, 0.1) == pytest.approx(3.0)
    assert convert.to_venue_amount(7.0, 1.0) == 7.0


def _deribit_config(tmp_path: Path, emu: DeribitEmulator, hedge: str) -> Path:
    urls = "\n".join(f'"{k}" = "{v}"' for k, v in emu.config_urls().items())
    config = tmp_path / "bot.toml"
    config.write_text(
        f"""
bot_id = "units"
[journal]
path = "{tmp_path / "journal.sqlite"}"
[accounts.deribit]
exchange = "deribit"
mode = "testnet"
request_timeout_s = 2
[accounts.deribit.urls]
{urls}
[hedge.BTC]
account = "deribit"
instrument = "{hedge}"
[hedge.BTC.policy]
kind = "band"
band = 0.2
"""
    )
    return config


async def _bot(*args: str) -> tuple[int, str, str]:
    """`python -m bot ARGS` without blocking the loop the emulator runs on."""
    env = clean_env(
        HEDGEBOT_ACCOUNTS__DERIBIT__API_KEY="emulator-key",
        HEDGEBOT_ACCOUNTS__DERIBIT__SECRET="emulator-secret",
    )
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


async def test_daemon_refuses_to_start_on_an_implausible_hedge_market(tmp_path: Path) -> None:
    """Through `python -m bot run` (and `markets`): a Deribit linear perp listed with a whole-BTC
    lot (1 BTC contracts, 60000 USD a lot) is the configured hedge: both stop with its numbers."""
    coarse = linear_perp_market()
    coarse.contract_size = coarse.step = coarse.min_amount = 1.0
    emu = await DeribitEmulator(ExchangeState([*default_markets(), coarse], {"BTC": 1.0})).start()
    config = _deribit_config(tmp_path, emu, "BTC/USDT:USDT")
    try:
        code, _, err = await _bot("run", "--config", str(config))
        checked, _, checked_err = await _bot("markets", "--config", str(config))
    finally:
        await emu.stop()
    assert code == 2, err
    assert "deribit market 'BTC/USDT:USDT' lot" in err
    assert "one lot must be worth at most 50000 USD" in err and "60000 USD" in err
    assert not emu.state.orders  # nothing was sent
    assert checked == 2 and "one lot must be worth at most 50000 USD" in checked_err


async def test_markets_command_shows_units_per_symbol(tmp_path: Path) -> None:
    state = ExchangeState([*default_markets(), linear_perp_market()], {"BTC": 1.0})
    emu = await DeribitEmulator(state).start()
    config = _deribit_config(tmp_path, emu, "BTC/USDT:USDT")
    try:
        code, out, err = await _bot(
            "markets", "--config", str(config), "--symbol", "BTC/USD:BTC", "--symbol", "NOPE/X"
        )
    finally:
        await emu.stop()
    rows = {row["symbol"]: row for row in json.loads(out)}
    assert code == 2, err  # NOPE/X is not listed
    assert rows["NOPE/X"] == {"account": "deribit", "symbol": "NOPE/X", "listed": False}
    linear = rows["BTC/USDT:USDT"]
    assert (linear["contract_size"], linear["contract_unit"]) == (0.001, "BTC")
    assert (linear["venue_amount_unit"], linear["venue_amount_per_contract"]) == ("coin", 0.001)
    assert (linear["lot_contracts"], linear["min_contracts"]) == (1.0, 1.0)
    inverse = rows["BTC/USD:BTC"]
    assert (inverse["contract_size"], inverse["contract_unit"]) == (1.0, "USD")
    assert (inverse["venue_amount_unit"], inverse["lot_contracts"]) == ("USD", 10.0)
