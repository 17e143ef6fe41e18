"""Account arithmetic of the simulated exchange: cash, realized P&L, fees, expiry."""

from __future__ import annotations

import pytest

from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.venues.sim.ledger import Ledger

SPOT = Instrument("BTC/USDT", "BTC", Kind.SPOT, quote="USDT")
LIN = Instrument("BTC/USDT:USDT", "BTC", Kind.PERP, quote="USDT")
INV = Instrument("BTC/USD:BTC", "BTC", Kind.PERP, Settlement.INVERSE, 10.0)
FUT = Instrument("BTC/USDT:USDT-260131", "BTC", Kind.FUTURE, quote="USDT", expiry_ms=1)
LCALL = Instrument(
    "BTC/USDC:USDC-260131-60000-C",
    "BTC",
    Kind.OPTION,
    quote="USDC",
    expiry_ms=1,
    strike=60_000.0,
    option_type=OptionType.CALL,
)
IPUT = Instrument(
    "BTC/USD:BTC-260131-60000-P",
    "BTC",
    Kind.OPTION,
    Settlement.INVERSE,
    expiry_ms=1,
    strike=60_000.0,
    option_type=OptionType.PUT,
)


def test_spot_moves_coin_and_quote() -> None:
    led = Ledger(balances={"USDT": 100_000.0})
    led.trade(SPOT, 1.0, 60_000.0, 30.0)
    assert led.balances == {"USDT": pytest.approx(39_970.0), "BTC": 1.0}
    led.trade(SPOT, -0.5, 62_000.0, 15.5)
    assert led.balances["USDT"] == pytest.approx(39_970.0 + 31_000.0 - 15.5)
    assert led.balances["BTC"] == 0.5 and led.qty("BTC/USDT") == 0.5


def test_linear_perp_realizes_pnl_on_reduce_and_flip() -> None:
    led = Ledger(balances={"USDT": 0.0})
    led.trade(LIN, 2.0, 100.0, 0.0)
    led.trade(LIN, 1.0, 130.0, 0.0)  # avg entry 110
    assert led.balances["USDT"] == 0.0 and led.qty(LIN.symbol) == 3.0
    led.trade(LIN, -1.0, 120.0, 1.0)  # realize +10, fee 1
    assert led.balances["USDT"] == pytest.approx(9.0)
    led.trade(LIN, -4.0, 90.0, 0.0)  # close 2 at 90 (-40), open short 2 at 90
    assert led.balances["USDT"] == pytest.approx(-31.0)
    assert led.qty(LIN.symbol) == -2.0
    led.trade(LIN, 2.0, 80.0, 0.0)  # short profit +20
    assert led.balances["USDT"] == pytest.approx(-11.0)
    assert led.qty(LIN.symbol) == 0.0 and led.positions[LIN.symbol].cost == 0.0


def test_inverse_perp_pnl_in_coin() -> None:
    led = Ledger()
    led.trade(INV, 1_000.0, 50_000.0, 0.0001)  # 10k USD long, fee in coin
    led.trade(INV, -1_000.0, 60_000.0, 0.0)
    pnl = 10_000.0 * (1 / 50_000.0 - 1 / 60_000.0)
    assert led.balances["BTC"] == pytest.approx(pnl - 0.0001)
    assert "USD" not in led.balances
    led.trade(INV, -500.0, 60_000.0, 0.0)  # short 5k USD
    led.trade(INV, 500.0, 40_000.0, 0.0)
    assert led.balances["BTC"] == pytest.approx(
        pnl - 0.0001 - 5_000.0 * (1 / 60_000.0 - 1 / 40_000.0)
    )


def test_options_pay_premium_up_front_and_intrinsic_at_expiry() -> None:
    led = Ledger(balances={"USDC": 0.0, "BTC": 0.0})
    led.trade(LCALL, 2.0, 3_000.0, 3.0)
    assert led.balances["USDC"] == pytest.approx(-6_003.0)
    led.trade(IPUT, -1.0, 0.05, 0.0003)  # sell a coin put: receive 0.05 BTC less fee
    assert led.balances["BTC"] == pytest.approx(0.0497)
    assert led.settle_expired(LCALL, 65_000.0) == pytest.approx(10_000.0)
    assert led.balances["USDC"] == pytest.approx(3_997.0)
    # the put ends 10k in the money at 50k: the short pays 10k/50k = 0.2 BTC
    assert led.settle_expired(IPUT, 50_000.0) == pytest.approx(-0.2)
    assert led.balances["BTC"] == pytest.approx(0.0497 - 0.2)
    assert led.qty(LCALL.symbol) == 0.0 and led.qty(IPUT.symbol) == 0.0


def test_future_settles_at_index() -> None:
    led = Ledger()
    led.trade(FUT, -1.0, 60_000.0, 0.0)
    assert led.settle_expired(FUT, 58_000.0) == pytest.approx(2_000.0)
    assert led.balances["USDT"] == pytest.approx(2_000.0) and led.qty(FUT.symbol) == 0.0
    assert led.settle_expired(FUT, 1.0) == 0.0
