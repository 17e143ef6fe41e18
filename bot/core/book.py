"""The portfolio book: positions as numpy columns, greeks aggregated per underlying.

Pure: positions, prices and time come in as arguments. Units (see design.md):
- spot and linear contracts: coin delta = qty x contract_size;
- inverse perps and futures (contract size in USD): coin delta = qty x contract_size / price;
- linear options: Black-Scholes delta x contract_size x qty;
- inverse (coin-settled) options: premium-adjusted delta (BS delta - price/S) x contract_size x qty.
Hedge views: "usd" also counts held coin, so the account's USD value is flat at target delta 0
(the coin equity comes in as `external_delta_coin`, bot/core/equity.py); "coin" counts only
derivatives and leaves held coin alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import numpy.typing as npt

from bot.core.greeks import black_scholes, year_fractions
from bot.core.instruments import Instrument, Kind, OptionType
from bot.core.market import UnderlyingMarket

HedgeView = Literal["usd", "coin"]
LineKey = tuple[str, str]  # (account, symbol): one line of the book
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Columns:
    """The instruments of one underlying as columns, built once per set of instruments."""

    underlying: str
    keys: tuple[LineKey, ...]
    is_spot: BoolArray
    is_option: BoolArray
    is_inverse: BoolArray
    is_call: BoolArray
    contract_size: FloatArray
    strike: FloatArray  # nan where not an option
    expiry_ms: npt.NDArray[np.int64]  # 0 where none

    @staticmethod
    def of(underlying: str, lines: Mapping[LineKey, Instrument]) -> Columns:
        keys = tuple(k for k, i in lines.items() if i.underlying == underlying)
        ins = [lines[k] for k in keys]
        return Columns(
            underlying=underlying,
            keys=keys,
            is_spot=np.array([i.kind is Kind.SPOT for i in ins], dtype=bool),
            is_option=np.array([i.kind is Kind.OPTION for i in ins], dtype=bool),
            is_inverse=np.array([i.is_inverse for i in ins], dtype=bool),
            is_call=np.array([i.option_type is OptionType.CALL for i in ins], dtype=bool),
            contract_size=np.array([i.contract_size for i in ins], dtype=np.float64),
            strike=np.array([i.strike if i.strike else np.nan for i in ins], dtype=np.float64),
            expiry_ms=np.array([i.expiry_ms or 0 for i in ins], dtype=np.int64),
        )

    def quantities(self, qty: Mapping[LineKey, float]) -> FloatArray:
        return np.array([qty.get(k, 0.0) for k in self.keys], dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Exposure:
    """Greeks of one underlying, in coin and USD. delta_* count in-flight orders."""

    underlying: str
    ts_ms: int
    price: float
    delta_coin: float
    delta_usd: float
    gamma_coin: float  # d(delta_coin)/dS, per USD
    vega_usd: float  # per 1.00 of volatility
    theta_usd: float  # per year
    in_flight_coin: float  # the part of delta_coin that in-flight orders contribute

    def delta_in(self, unit: Literal["coin", "usd"]) -> float:
        return self.delta_coin if unit == "coin" else self.delta_usd


@dataclass(frozen=True, slots=True)
class LineGreeks:
    """Per-contract greeks of every column at one price (coin units)."""

    delta: FloatArray
    gamma: FloatArray
    vega_usd: FloatArray
    theta_usd: FloatArray


def line_greeks(
    cols: Columns, market: UnderlyingMarket, now_ms: int, view: HedgeView
) -> LineGreeks:
    """Greeks of one long contract of each column."""
    n = len(cols.keys)
    s = market.index
    delta = np.where(cols.is_inverse, cols.contract_size / s, cols.contract_size)
    gamma = np.where(cols.is_inverse, -cols.contract_size / (s * s), 0.0)
    vega = np.zeros(n)
    theta = np.zeros(n)
    if view == "coin":
        delta = np.where(cols.is_spot, 0.0, delta)
    opt = cols.is_option
    if opt.any():
        t = year_fractions(cols.expiry_ms[opt], now_ms)
        iv = np.array(
            [market.option_iv.get(k, market.vol) for k, o in zip(cols.keys, opt, strict=True) if o]
        )
        g = black_scholes(s, cols.strike[opt], t, market.rate, iv, cols.is_call[opt])
        size = cols.contract_size[opt]
        inv = cols.is_inverse[opt]
        # Coin-settled options: the premium is itself coin, so its delta is the BS delta less the
        # option's price in coin (premium-adjusted delta); its gamma follows by differentiation.
        pa_delta = g.delta - g.price / s
        pa_gamma = g.gamma - g.delta / s + g.price / (s * s)
        delta[opt] = np.where(inv, pa_delta, g.delta) * size
        gamma[opt] = np.where(inv, pa_gamma, g.gamma) * size
        vega[opt] = g.vega * size
        theta[opt] = g.theta * size
    return LineGreeks(delta=delta, gamma=gamma, vega_usd=vega, theta_usd=theta)


def exposure(
    cols: Columns,
    positions: Mapping[LineKey, float],
    in_flight: Mapping[LineKey, float],
    market: UnderlyingMarket,
    now_ms: int,
    view: HedgeView,
    external_delta_coin: float = 0.0,
) -> Exposure:
    """Aggregate greeks of one underlying. In-flight orders count as if filled: an order that
    may fill is exposure until it is known not to. `external_delta_coin` is delta held
    elsewhere (OTC, other venues) that the operator reports in coin."""
    g = line_greeks(cols, market, now_ms, view)
    held = cols.quantities(positions)
    pending = cols.quantities(in_flight)
    qty = held + pending
    delta_coin = float(qty @ g.delta) + external_delta_coin
    return Exposure(
        underlying=cols.underlying,
        ts_ms=market.ts_ms,
        price=market.index,
        delta_coin=delta_coin,
        delta_usd=delta_coin * market.index,
        gamma_coin=float(qty @ g.gamma),
        vega_usd=float(qty @ g.vega_usd),
        theta_usd=float(qty @ g.theta_usd),
        in_flight_coin=float(pending @ g.delta),
    )
