"""A book held through a quiet span, valued at every tick of it at once: the fast-forward's P&L
attribution. Pure.

`exposure_of` (bot/core/book.py) values a book at one price and time; here the same terms are
taken over the span's (price, time) pairs with the vectorized Black-Scholes kernel
(bot/core/greeks.py): linear delta-one lines (spot left out in the "coin" view), inverse ones
(F/S, gamma -F/S^2) and options, premium-adjusted when coin-settled. Equal to the per-tick values
to rounding.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot.core.book import Columns, FloatArray, HedgeView, exposure_of
from bot.core.greeks import MS_PER_YEAR, black_scholes

IntArray = npt.NDArray[np.int64]
SCALAR_SPAN = 48  # ticks x options held at most valued one tick at a time


@dataclass(frozen=True, slots=True)
class SpanGreeks:
    """Per tick of the span (arrays of its length), as Exposure's fields."""

    delta_coin: FloatArray
    gamma_coin: FloatArray
    vega_usd: FloatArray
    theta_usd: FloatArray


def years_left(expiry_ms: IntArray, now_ms: IntArray) -> FloatArray:
    """(ticks, lines) years to expiry, 0 once expired (greeks.year_fractions per tick)."""
    left = expiry_ms[None, :].astype(np.int64) - now_ms[:, None].astype(np.int64)
    return np.asarray(np.maximum(left, 0) / MS_PER_YEAR, dtype=np.float64)


def span_greeks(
    cols: Columns,
    qty: FloatArray,
    iv: FloatArray,
    s: FloatArray,
    now_ms: IntArray,
    rate: float,
    view: HedgeView,
) -> SpanGreeks:
    """The greeks of `qty` (aligned with cols.keys) at each (s[i], now_ms[i])."""
    live = cols.opt[qty[cols.opt] != 0.0]
    if len(s) * live.size <= SCALAR_SPAN:
        # numpy's per-call cost dominates a short span of a small book: exposure_of per tick
        zero = np.zeros(len(cols.keys))
        rows = [
            exposure_of(cols, qty, zero, x, iv, rate, n, view)
            for x, n in zip(s.tolist(), now_ms.tolist(), strict=True)
        ]
        return SpanGreeks(
            np.array([e.delta_coin for e in rows]),
            np.array([e.gamma_coin for e in rows]),
            np.array([e.vega_usd for e in rows]),
            np.array([e.theta_usd for e in rows]),
        )
    linear = cols.linear_usd if view == "usd" else cols.linear_coin
    inv = float(qty @ cols.inverse_usd)
    delta = float(qty @ linear) + inv / s
    gamma = -inv / (s * s)
    vega = np.zeros(len(s))
    theta = np.zeros(len(s))
    if live.size:
        sc = s[:, None]
        t = years_left(cols.expiry_ms[live], now_ms)
        g = black_scholes(sc, cols.strike[live], t, rate, iv[live], cols.is_call[live])
        d, gm = g.delta, g.gamma
        inverse = cols.is_inverse[live]
        if inverse.any():
            gm = np.where(inverse, gm - d / sc + g.price / (sc * sc), gm)
            d = np.where(inverse, d - g.price / sc, d)
        w = qty[live] * cols.contract_size[live]
        delta = delta + d @ w
        gamma = gamma + gm @ w
        vega = g.vega @ w
        theta = g.theta @ w
    return SpanGreeks(delta + np.zeros(len(s)), gamma + np.zeros(len(s)), vega, theta)
