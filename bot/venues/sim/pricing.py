"""Fair values of listed instruments from the underlying's index (pure).

No rates and no basis: perps and dated futures are worth the index. Options are priced with
Black-Scholes at the underlying's configured vol, which is also their implied vol. Inverse option
marks are in coin.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.greeks import black_scholes, year_fraction
from bot.core.instruments import Instrument, Kind, OptionType


@dataclass(frozen=True, slots=True)
class Fair:
    mark: float  # in the instrument's price unit (coin for inverse options)
    iv: float | None = None  # options only, a fraction
    delta: float | None = None  # options only: coin delta per contract, premium-adjusted if inverse


def fair_value(inst: Instrument, index: float, vol: float, now_ms: int) -> Fair:
    if inst.kind is not Kind.OPTION:
        return Fair(mark=index)
    assert inst.strike is not None and inst.expiry_ms is not None
    g = black_scholes(
        index,
        inst.strike,
        year_fraction(inst.expiry_ms, now_ms),
        0.0,
        vol,
        inst.option_type is OptionType.CALL,
    )
    price_usd = float(g.price)
    delta = float(g.delta)
    if inst.is_inverse:
        price_coin = price_usd / index
        return Fair(mark=price_coin, iv=vol, delta=(delta - price_coin) * inst.contract_size)
    return Fair(mark=price_usd, iv=vol, delta=delta * inst.contract_size)


def intrinsic_usd(inst: Instrument, index: float) -> float:
    """Payoff per coin of an option at expiry, in USD."""
    assert inst.strike is not None
    if inst.option_type is OptionType.CALL:
        return max(index - inst.strike, 0.0)
    return max(inst.strike - index, 0.0)
