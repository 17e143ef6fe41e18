"""Shared fixtures: instruments as the simulated exchange and the real venues list them."""

from __future__ import annotations

import pytest

from bot.core.instruments import Instrument, Kind, OptionType, Settlement

DAY_MS = 86_400_000
NOW_MS = 1_767_225_600_000  # 2026-01-01T00:00:00Z


@pytest.fixture
def linear_perp() -> Instrument:
    return Instrument(
        "BTC/USDT:USDT",
        "BTC",
        Kind.PERP,
        Settlement.LINEAR,
        1.0,
        amount_step=0.001,
        min_amount=0.001,
        price_step=0.1,
    )


@pytest.fixture
def inverse_perp() -> Instrument:
    return Instrument(
        "BTC/USD:BTC",
        "BTC",
        Kind.PERP,
        Settlement.INVERSE,
        10.0,
        amount_step=1.0,
        min_amount=1.0,
        price_step=0.5,
    )


@pytest.fixture
def spot() -> Instrument:
    return Instrument("BTC/USDT", "BTC", Kind.SPOT, Settlement.LINEAR, 1.0, amount_step=1e-5)


def option(settlement: Settlement, kind: OptionType, strike: float, days: float) -> Instrument:
    tag = "C" if kind is OptionType.CALL else "P"
    quote = "USD:BTC" if settlement is Settlement.INVERSE else "USDC:USDC"
    return Instrument(
        f"BTC/{quote}-{int(days)}-{int(strike)}-{tag}",
        "BTC",
        Kind.OPTION,
        settlement,
        1.0,
        expiry_ms=NOW_MS + int(days * DAY_MS),
        strike=strike,
        option_type=kind,
        amount_step=0.1,
    )
