"""The exposure kernels of the book: the greeks of the priced lines summed in plain floats (small
books, a few options) or in one vectorized call (many options). Each returns the sums
(delta coin, gamma, vega USD, theta USD/yr, in-flight delta coin); bot/core/book.py picks one."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from bot.core.book_columns import Columns, FloatArray, HedgeView
from bot.core.greeks import MS_PER_YEAR, black_scholes_1d, year_fractions

# (delta coin, gamma, vega USD, theta USD/yr, in-flight delta coin)
Sums = tuple[float, float, float, float, float]
_SQRT1_2 = math.sqrt(0.5)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_MIN_STDDEV = 1e-12  # as bot/core/greeks.py


def option_scalar(
    s: float, k: float, t: float, r: float, sigma: float, call: bool, inverse: bool
) -> tuple[float, float, float, float]:
    """(delta coin, gamma, vega USD, theta USD/yr) of one long option on 1 coin: the formulas
    and degenerate cases of greeks.black_scholes, in plain floats; premium-adjusted when
    `inverse` (coin-settled)."""
    sign = 1.0 if call else -1.0
    t = max(t, 0.0)
    kdf = k * math.exp(-r * t) if r != 0.0 else k
    sqrt_t = math.sqrt(t)
    stddev = sigma * sqrt_t
    if stddev > _MIN_STDDEV:
        d1 = (math.log(s / k) + (r + 0.5 * sigma * sigma) * t) / stddev
        n1 = 0.5 * math.erfc(-sign * d1 * _SQRT1_2)
        n2 = 0.5 * math.erfc(-sign * (d1 - stddev) * _SQRT1_2)
        pdf = math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
        price = max(sign * (s * n1 - kdf * n2), 0.0)
        delta = sign * n1
        gamma = pdf / (s * stddev)
        vega = s * pdf * sqrt_t
        theta = -s * pdf * sigma / (2.0 * sqrt_t) - sign * r * kdf * n2
    else:
        itm = (s > kdf) if call else (s < kdf)
        price = max(sign * (s - kdf), 0.0)
        delta = sign if itm else 0.0
        gamma = vega = 0.0
        theta = -sign * r * kdf if itm and t > 0.0 else 0.0
    if inverse:
        gamma = gamma - delta / s + price / (s * s)
        delta = delta - price / s
    return delta, gamma, vega, theta


def linear_gamma_vanna(
    s: float, k: FloatArray, t: FloatArray, r: float, sigma: FloatArray
) -> tuple[FloatArray, FloatArray] | None:
    """Gamma and vanna (d delta / d vol) of one long linear option per strike on 1 coin, by
    black_scholes_1d's formulas on the same floats, without what they are not made of (the
    normal CDF, price, delta, theta); None when an option is expired or has no volatility
    (book._gamma_vanna then values the book). `t`: years, not negative."""
    sqrt_t = np.sqrt(t)
    stddev = sigma * sqrt_t
    if not (stddev > _MIN_STDDEV).all():
        return None
    log_m = np.log(s / k)
    half_var = 0.5 * sigma * sigma
    d1 = (log_m + (r + half_var) * t) / stddev
    pdf = np.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
    vega = s * pdf * sqrt_t
    d2 = (log_m + (r - half_var) * t) / stddev
    return pdf / (s * stddev), -(vega / s) * d2 / stddev


def sums_small(
    cols: Columns,
    held: FloatArray,
    pending: FloatArray,
    s: float,
    iv: FloatArray,
    r: float,
    now_ms: int,
    view: HedgeView,
) -> Sums:
    """The sums of every line in plain floats: `option_scalar` inlined (a call per option costs
    as much as its arithmetic), same formulas and degenerate cases."""
    held_l, pending_l, iv_l = held.tolist(), pending.tolist(), iv.tolist()
    no_spot = view == "coin"
    erfc, exp, sqrt, log_s = math.erfc, math.exp, math.sqrt, math.log(s)  # once, not per option
    delta = gamma = vega = theta = flight = 0.0
    for i, (is_opt, size, k, expiry, call, inverse, spot, log_k) in enumerate(cols.terms):
        p = pending_l[i]
        q = held_l[i] + p
        if q == 0.0 and p == 0.0:
            continue
        if is_opt:
            t = max(expiry - now_ms, 0) / MS_PER_YEAR
            sigma = iv_l[i]
            sign = 1.0 if call else -1.0
            kdf = k * exp(-r * t) if r != 0.0 else k
            sqrt_t = sqrt(t)
            stddev = sigma * sqrt_t
            if stddev > _MIN_STDDEV:
                d1 = (log_s - log_k + (r + 0.5 * sigma * sigma) * t) / stddev
                n1 = 0.5 * erfc(-sign * d1 * _SQRT1_2)
                pdf = exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
                d = sign * n1
                g = pdf / (s * stddev)
                th = -s * pdf * sigma / (2.0 * sqrt_t)
                # N(d2) only enters the premium (coin-settled) and the rate's theta term: a
                # linear option at no rate skips it, a third of the per-option cost.
                if inverse or r != 0.0:
                    n2 = 0.5 * erfc(-sign * (d1 - stddev) * _SQRT1_2)
                    th = th - sign * r * kdf * n2
                    if inverse:
                        price = sign * (s * n1 - kdf * n2)
                        price = price if price > 0.0 else 0.0
                        g = g - d / s + price / (s * s)
                        d = d - price / s
                qs = q * size
                vega += qs * s * pdf * sqrt_t
                theta += qs * th
            else:
                d, g, _, th = option_scalar(s, k, t, r, sigma, call, inverse)
                theta += q * size * th
            d, g = d * size, g * size
        elif inverse:
            d, g = size / s, -size / (s * s)
        else:
            d, g = (0.0 if spot and no_spot else size), 0.0
        delta += q * d
        gamma += q * g
        flight += p * d
    return delta, gamma, vega, theta, flight


def options_scalar(
    cols: Columns,
    live: npt.NDArray[np.intp],
    qty: FloatArray,
    pending: FloatArray,
    s: float,
    iv: FloatArray,
    r: float,
    now_ms: int,
) -> Sums:
    """The sums of the options in `live` (column indices), one `option_scalar` call each."""
    delta = gamma = vega = theta = flight = 0.0
    for i in live.tolist():
        _, size, k, expiry, call, inverse, _, _ = cols.terms[i]
        t = max(expiry - now_ms, 0) / MS_PER_YEAR
        d, g, v, th = option_scalar(s, k, t, r, float(iv[i]), call, inverse)
        q = float(qty[i]) * size
        delta += q * d
        gamma += q * g
        vega += q * v
        theta += q * th
        flight += float(pending[i]) * size * d
    return delta, gamma, vega, theta, flight


def options_vector(
    cols: Columns,
    live: npt.NDArray[np.intp],
    qty: FloatArray,
    pending: FloatArray,
    s: float,
    iv: FloatArray,
    r: float,
    now_ms: int,
) -> Sums:
    """The sums of the options in `live` (column indices), in one vectorized call."""
    if live.size == cols.opt.size:  # every option held: the terms gathered at build time
        strike, expiry, call = cols.opt_strike, cols.opt_expiry_ms, cols.opt_call
        inverse, size = cols.opt_inverse, cols.opt_size
    else:
        at = np.searchsorted(cols.opt, live)
        strike, expiry, call = cols.opt_strike[at], cols.opt_expiry_ms[at], cols.opt_call[at]
        inverse, size = cols.opt_inverse[at], cols.opt_size[at]
    g = black_scholes_1d(s, strike, year_fractions(expiry, now_ms), r, iv[live], call)
    q = qty[live] * size
    p = pending[live] * size
    delta = float(q @ g.delta)
    gamma = float(q @ g.gamma)
    flight = float(p @ g.delta)
    # Coin-settled options: premium-adjusted delta (delta - price/S) and its derivative (see
    # book.line_greeks), as sums: only the inverse options' share of the price and delta counts.
    qi = q * inverse
    price_i = float(qi @ g.price)
    delta -= price_i / s
    gamma += (price_i / s - float(qi @ g.delta)) / s
    flight -= float((p * inverse) @ g.price) / s
    return delta, gamma, float(q @ g.vega), float(q @ g.theta), flight
