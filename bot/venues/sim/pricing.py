"""Fair values of listed instruments from the underlying's index (pure).

No rates and no basis: perps and dated futures are worth the index. Options are priced with
Black-Scholes at the underlying's configured vol, which is also their implied vol. Inverse option
marks are in coin. `option_marks` prices every option of the exchange in one vectorized call.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from bot.core.greeks import MS_PER_YEAR, FloatArray, black_scholes, year_fraction
from bot.core.instruments import Instrument, Kind, OptionType

MIN_STDDEV = 1e-12  # as in bot.core.greeks: below it the option is worth its intrinsic value


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
    return option_fair(inst, index, vol, float(g.price), float(g.delta))


def intrinsic_usd(inst: Instrument, index: float) -> float:
    """Payoff per coin of an option at expiry, in USD."""
    assert inst.strike is not None
    if inst.option_type is OptionType.CALL:
        return max(index - inst.strike, 0.0)
    return max(inst.strike - index, 0.0)


@dataclass(frozen=True, slots=True)
class OptionColumns:
    """Every listed option as columns, built once, so one vectorized call prices them all."""

    symbols: tuple[str, ...]
    underlying: npt.NDArray[np.intp]  # position of the option's underlying in the price vector
    strike: FloatArray
    expiry_ms: npt.NDArray[np.int64]
    sign: FloatArray  # +1 call, -1 put
    sigma: FloatArray
    half_var: FloatArray  # 0.5 sigma^2, per year
    first_expiry_ms: int  # the earliest expiry (0 when there are no options)
    inverse: npt.NDArray[np.bool_]  # marked in coin
    contract_size: FloatArray

    @staticmethod
    def of(
        options: Sequence[Instrument], names: Sequence[str], vols: Mapping[str, float]
    ) -> OptionColumns:
        where = {u: i for i, u in enumerate(names)}
        sigma = np.array([vols[o.underlying] for o in options], dtype=np.float64)
        return OptionColumns(
            symbols=tuple(o.symbol for o in options),
            underlying=np.array([where[o.underlying] for o in options], dtype=np.intp),
            strike=np.array([o.strike for o in options], dtype=np.float64),
            expiry_ms=np.array([o.expiry_ms for o in options], dtype=np.int64),
            sign=np.array(
                [1.0 if o.option_type is OptionType.CALL else -1.0 for o in options],
                dtype=np.float64,
            ),
            sigma=sigma,
            half_var=0.5 * sigma * sigma,
            first_expiry_ms=min((o.expiry_ms or 0 for o in options), default=0),
            inverse=np.array([o.is_inverse for o in options], dtype=np.bool_),
            contract_size=np.array([o.contract_size for o in options], dtype=np.float64),
        )


def option_marks(
    cols: OptionColumns, prices: Sequence[float], now_ms: int
) -> tuple[FloatArray, FloatArray]:
    """USD price and plain delta of every option, for underlying prices in `names` order.

    Black-Scholes with no rate, written as `bot.core.greeks.black_scholes` computes it (the same
    operations in the same order, so the same floats) but only price and delta: the exchange
    needs nothing else, and the other greeks would double the cost of a tick.
    """
    s = np.asarray(prices, dtype=np.float64)[cols.underlying]
    k, sign, n = cols.strike, cols.sign, len(cols.strike)
    left = cols.expiry_ms - now_ms
    t = (left if now_ms < cols.first_expiry_ms else np.maximum(left, 0)) / MS_PER_YEAR
    stddev = cols.sigma * np.sqrt(t)
    # NaN counts as dead, as in greeks; the min is the cheap test that nothing is.
    dead = np.flatnonzero(~(stddev > MIN_STDDEV)) if not stddev.min() > MIN_STDDEV else None
    if dead is not None:
        stddev[dead] = 1.0  # overwritten below; avoids dividing by zero
    d1 = (np.log(s / k) + cols.half_var * t) / stddev
    # N(sign d1) and N(sign d2) in one call.
    x = np.empty(2 * n)
    np.multiply(sign, d1, out=x[:n])
    np.subtract(d1, stddev, out=x[n:])
    np.multiply(sign, x[n:], out=x[n:])
    nd = ndtr(x)
    n1, n2 = nd[:n], nd[n:]
    price = np.maximum(sign * (s * n1 - k * n2), 0.0)
    delta = sign * n1
    if dead is not None:
        # Expired or no vol left: intrinsic value, and delta the step at the strike.
        si, ki, sg = s[dead], k[dead], sign[dead]
        price[dead] = np.maximum(sg * (si - ki), 0.0)
        delta[dead] = np.where(sg * (si - ki) > 0.0, sg, 0.0)
    return price, delta


def option_fairs(
    cols: OptionColumns, prices: Sequence[float], price_usd: FloatArray, delta: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Mark and delta per contract of every option from `option_marks`, the floats
    `option_fair` makes one by one (the same operations, each correctly rounded)."""
    index = np.asarray(prices, dtype=np.float64)[cols.underlying]
    with np.errstate(divide="ignore", invalid="ignore"):  # linear ones ignore the coin price
        coin = price_usd / index
    mark = np.where(cols.inverse, coin, price_usd)
    return mark, np.where(cols.inverse, delta - coin, delta) * cols.contract_size


def option_fair(inst: Instrument, index: float, vol: float, price_usd: float, delta: float) -> Fair:
    """`Fair` of one option from its USD price and plain delta (as `fair_value` makes it)."""
    if inst.is_inverse:
        price_coin = price_usd / index
        return Fair(mark=price_coin, iv=vol, delta=(delta - price_coin) * inst.contract_size)
    return Fair(mark=price_usd, iv=vol, delta=delta * inst.contract_size)
