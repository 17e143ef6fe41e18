"""Vectorized Black-Scholes-Merton and Black-76 greeks for European options.

Pure: numpy and scipy only, no I/O, no clock. Every input may be a scalar or an array; all of them
broadcast together and the greeks come back as arrays of the broadcast shape (0-d for all-scalar
input).

Units (see design.md, "Units and conventions"), for one option on 1 coin of underlying:

- ``price``: quote currency (USD) per option.
- ``delta``: coin of underlying per option, i.e. d(price)/d(underlying price). The caller multiplies
  by contract size (in coin) and quantity.
- ``gamma``: d(delta)/d(underlying price): coin per USD.
- ``vega``: USD per 1.00 (100 vol points) of volatility; divide by 100 for "per vol point".
- ``theta``: USD per year of calendar time passing, i.e. -d(price)/d(T); divide by 365 (or 365.25)
  for a daily figure.

Inputs: ``T`` in years (see :func:`year_fraction`), ``r`` continuously compounded per year,
``sigma`` as a fraction (0.61, never 61: normalise at the venue edge), ``is_call`` boolean.
``S``, ``F`` and ``K`` must be positive.

Linear (USD/USDC-settled) options use the plain delta. Coin-settled (inverse) options pay their
premium in coin, so their coin delta is the premium-adjusted delta ``delta - price / S``
(:func:`premium_adjusted_delta`, :func:`coin_settled_delta`), with gamma
:func:`premium_adjusted_gamma`.

Degenerate inputs never produce NaN or inf:

- expired (``T <= 0``): intrinsic value ``max(±(S - K), 0)``; delta is the step 1 for a call with
  ``S > K``, -1 for a put with ``S < K``, else 0; gamma, vega and theta are 0.
- no volatility (``sigma <= 0``, or ``sigma * sqrt(T)`` too small to divide by): the option is
  worth its discounted forward intrinsic value, ``max(±(S - K e^{-rT}), 0)`` (Black-76:
  ``e^{-rT} max(±(F - K), 0)``); delta is the same step taken against the discounted strike
  (Black-76: against the strike, scaled by ``e^{-rT}``); gamma and vega are 0; theta is the
  sigma -> 0 limit, the carry of the discounting (``-r K e^{-rT}`` for an in-the-money call,
  ``+r K e^{-rT}`` for an in-the-money put; Black-76: ``r * price``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

MS_PER_YEAR = 365.25 * 24 * 3600 * 1000
"""Milliseconds in a (Julian) year of 365.25 days: the year of :func:`year_fraction`."""

_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
# Below this total standard deviation sigma * sqrt(T) the lognormal has collapsed onto the forward
# for any practical purpose; dividing by it would risk overflow, so it is treated as no volatility.
_MIN_STDDEV = 1e-12


@dataclass(frozen=True, slots=True)
class Greeks:
    """Greeks of one long European option on 1 coin of underlying, as arrays of one shape.

    price: USD per option. delta: coin per option (d price / d underlying). gamma: coin per USD
    (d delta / d underlying). vega: USD per 1.00 of volatility. theta: USD per year (-d price/dT).
    """

    price: FloatArray
    delta: FloatArray
    gamma: FloatArray
    vega: FloatArray
    theta: FloatArray


def year_fraction(expiry_ms: int, now_ms: int) -> float:
    """Years from ``now_ms`` to ``expiry_ms`` (UTC epoch milliseconds), never negative.

    ``max(expiry_ms - now_ms, 0) / (365.25 * 24 * 3600 * 1000)``.
    """
    return max(expiry_ms - now_ms, 0) / MS_PER_YEAR


def year_fractions(expiry_ms: npt.ArrayLike, now_ms: int) -> FloatArray:
    """:func:`year_fraction` over an array of expiries (epoch ms, integer array preferred)."""
    remaining = np.asarray(expiry_ms, dtype=np.int64) - np.int64(now_ms)
    return np.asarray(np.maximum(remaining, 0) / MS_PER_YEAR, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class _Prepared:
    """Inputs broadcast together and flattened to 1-D; the greeks are reshaped at the end."""

    shape: tuple[int, ...]
    x: FloatArray  # spot (BSM) or forward (Black-76)
    k: FloatArray
    t: FloatArray  # max(T, 0)
    r: FloatArray
    sigma: FloatArray
    is_call: BoolArray
    sign: FloatArray  # +1 call, -1 put
    sqrt_t: FloatArray  # 1 where the closed form does not apply
    stddev: FloatArray  # sigma sqrt(T), 1 where the closed form does not apply
    df: FloatArray  # e^{-r max(T, 0)}
    dead: npt.NDArray[np.intp]  # flat indices of expired or zero-vol entries


def _prepare(
    x: npt.ArrayLike,
    k: npt.ArrayLike,
    t: npt.ArrayLike,
    r: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
    name: str,
) -> _Prepared:
    xb, kb, tb, rb, sb, cb = np.broadcast_arrays(
        np.asarray(x, dtype=np.float64),
        np.asarray(k, dtype=np.float64),
        np.asarray(t, dtype=np.float64),
        np.asarray(r, dtype=np.float64),
        np.asarray(sigma, dtype=np.float64),
        np.asarray(is_call, dtype=np.bool_),
    )
    xa, ka, ta, ra, sa = np.ravel(xb), np.ravel(kb), np.ravel(tb), np.ravel(rb), np.ravel(sb)
    ca = np.ravel(cb)
    if np.any(xa <= 0.0):
        raise ValueError(f"{name} must be > 0")
    if np.any(ka <= 0.0):
        raise ValueError("K must be > 0")
    t_pos = np.maximum(ta, 0.0)
    sqrt_t = np.sqrt(t_pos)
    stddev = sa * sqrt_t
    # Closed form only where T > 0 and sigma > 0 with a usable sigma sqrt(T) (NaN counts as dead).
    dead = np.flatnonzero(~(stddev > _MIN_STDDEV))
    if dead.size:
        sqrt_t[dead] = 1.0  # safe values: these entries are overwritten afterwards
        stddev[dead] = 1.0
    return _Prepared(
        shape=xb.shape,
        x=xa,
        k=ka,
        t=t_pos,
        r=ra,
        sigma=sa,
        is_call=ca,
        sign=ca * 2.0 - 1.0,
        sqrt_t=sqrt_t,
        stddev=stddev,
        df=np.exp(-ra * t_pos),
        dead=dead,
    )


def _ncdf(x: FloatArray) -> FloatArray:
    return np.asarray(ndtr(x), dtype=np.float64)


def _npdf(x: FloatArray) -> FloatArray:
    return np.asarray(np.exp(-0.5 * x * x) * _INV_SQRT_2PI, dtype=np.float64)


def _step_delta(is_call: BoolArray, x: FloatArray, strike: FloatArray) -> FloatArray:
    """1 for a call with x > strike, -1 for a put with x < strike, else 0."""
    up = is_call & (x > strike)
    down = ~is_call & (x < strike)
    return np.where(up, 1.0, np.where(down, -1.0, 0.0))


def _shaped(
    p: _Prepared,
    price: FloatArray,
    delta: FloatArray,
    gamma: FloatArray,
    vega: FloatArray,
    theta: FloatArray,
) -> Greeks:
    return Greeks(
        price=price.reshape(p.shape),
        delta=delta.reshape(p.shape),
        gamma=gamma.reshape(p.shape),
        vega=vega.reshape(p.shape),
        theta=theta.reshape(p.shape),
    )


def black_scholes(
    S: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> Greeks:
    """Black-Scholes-Merton greeks of a European option on a spot, non-dividend underlying.

    S: underlying price (USD per coin, > 0). K: strike (USD, > 0). T: years to expiry. r: risk-free
    rate per year, continuous. sigma: volatility per sqrt(year), a fraction. is_call: True for a
    call. All broadcast together. Units of the result: see :class:`Greeks`; delta is coin per 1
    coin of underlying notional per option of contract size 1 (the caller multiplies by contract
    size and quantity). Expired and zero-vol options: see the module docstring.
    """
    p = _prepare(S, K, T, r, sigma, is_call, "S")
    s, k, sign = p.x, p.k, p.sign
    kdf = k * p.df  # discounted strike

    d1 = (np.log(s / k) + (p.r + 0.5 * p.sigma * p.sigma) * p.t) / p.stddev
    d2 = d1 - p.stddev
    n1 = _ncdf(sign * d1)  # N(d1) for a call, N(-d1) for a put
    n2 = _ncdf(sign * d2)
    pdf = _npdf(d1)

    price = np.maximum(sign * (s * n1 - kdf * n2), 0.0)
    delta = sign * n1
    gamma = pdf / (s * p.stddev)
    vega = s * pdf * p.sqrt_t
    theta = -s * pdf * p.sigma / (2.0 * p.sqrt_t) - sign * p.r * kdf * n2

    if p.dead.size:
        # Worth the discounted forward intrinsic value (plain intrinsic once expired).
        i = p.dead
        si, kdfi, signi, calli = s[i], kdf[i], sign[i], p.is_call[i]
        itm = np.where(calli, si > kdfi, si < kdfi) & (p.t[i] > 0.0)
        price[i] = np.maximum(signi * (si - kdfi), 0.0)
        delta[i] = _step_delta(calli, si, kdfi)
        gamma[i] = 0.0
        vega[i] = 0.0
        theta[i] = np.where(itm, -signi * p.r[i] * kdfi, 0.0)
    return _shaped(p, price, delta, gamma, vega, theta)


def black_scholes_1d(
    s: float, k: FloatArray, t: FloatArray, r: float, sigma: FloatArray, is_call: BoolArray
) -> Greeks:
    """:func:`black_scholes` for one spot price over 1-D arrays of one length, without the
    broadcasting and validation: the book's hot path, whose columns are built (and strikes
    checked) once. Same formulas and degenerate cases; `s` must be > 0."""
    t = np.maximum(t, 0.0)
    sqrt_t = np.sqrt(t)
    stddev = sigma * sqrt_t
    dead = np.flatnonzero(~(stddev > _MIN_STDDEV))
    if dead.size:
        sqrt_t = sqrt_t.copy()
        sqrt_t[dead] = 1.0
        stddev[dead] = 1.0
    sign = np.where(is_call, 1.0, -1.0)
    kdf = k * np.exp(-r * t) if r != 0.0 else k
    d1 = (np.log(s / k) + (r + 0.5 * sigma * sigma) * t) / stddev
    d2 = d1 - stddev
    n1 = _ncdf(sign * d1)
    n2 = _ncdf(sign * d2)
    pdf = _npdf(d1)
    price = np.maximum(sign * (s * n1 - kdf * n2), 0.0)
    delta = sign * n1
    gamma = pdf / (s * stddev)
    vega = s * pdf * sqrt_t
    theta = -s * pdf * sigma / (2.0 * sqrt_t)
    if r != 0.0:
        theta -= sign * r * kdf * n2
    if dead.size:
        i = dead
        kdfi, signi, calli = kdf[i], sign[i], is_call[i]
        itm = np.where(calli, s > kdfi, s < kdfi) & (t[i] > 0.0)
        price[i] = np.maximum(signi * (s - kdfi), 0.0)
        delta[i] = _step_delta(calli, np.full(i.size, s), kdfi)
        gamma[i] = 0.0
        vega[i] = 0.0
        theta[i] = np.where(itm, -signi * r * kdfi, 0.0)
    return Greeks(price=price, delta=delta, gamma=gamma, vega=vega, theta=theta)


def black76(
    F: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> Greeks:
    """Black-76 greeks of a European option on a forward or future, discounted at ``r``.

    F: forward/futures price (USD per coin, > 0); the other inputs as for :func:`black_scholes`.
    Greeks are taken against F: delta = d(price)/dF (coin per option, ``±e^{-rT} N(±d1)``), gamma
    = d(delta)/dF (coin per USD). vega per 1.00 of volatility, theta per year, with F held fixed.
    Expired and zero-vol options: see the module docstring.
    """
    p = _prepare(F, K, T, r, sigma, is_call, "F")
    f, k, sign, df = p.x, p.k, p.sign, p.df

    d1 = (np.log(f / k) + 0.5 * p.sigma * p.sigma * p.t) / p.stddev
    d2 = d1 - p.stddev
    n1 = _ncdf(sign * d1)
    n2 = _ncdf(sign * d2)
    pdf = _npdf(d1)

    price = np.maximum(df * sign * (f * n1 - k * n2), 0.0)
    delta = df * sign * n1
    gamma = df * pdf / (f * p.stddev)
    vega = df * f * pdf * p.sqrt_t
    theta = -df * f * pdf * p.sigma / (2.0 * p.sqrt_t) + p.r * price

    if p.dead.size:
        # Worth the discounted intrinsic value e^{-rT} max(±(F - K), 0).
        i = p.dead
        fi, ki, dfi, calli = f[i], k[i], df[i], p.is_call[i]
        price[i] = dfi * np.maximum(sign[i] * (fi - ki), 0.0)
        delta[i] = dfi * _step_delta(calli, fi, ki)
        gamma[i] = 0.0
        vega[i] = 0.0
        theta[i] = np.where(p.t[i] > 0.0, p.r[i] * price[i], 0.0)
    return _shaped(p, price, delta, gamma, vega, theta)


def premium_adjusted_delta(greeks: Greeks, S: npt.ArrayLike) -> FloatArray:
    """Coin delta of a coin-settled (inverse) option: ``delta - price / S``.

    The premium of a coin-settled option is itself coin (``price / S`` coin per option), whose
    value moves against the underlying, so the coin exposure is the plain delta less the option's
    price in coin. ``S`` is the underlying price the greeks were taken against (spot for
    :func:`black_scholes`, the forward for :func:`black76`). Units: coin per option on 1 coin of
    underlying; the caller multiplies by contract size and quantity. Always <= delta.
    """
    s = np.asarray(S, dtype=np.float64)
    return np.asarray(greeks.delta - greeks.price / s, dtype=np.float64)


def premium_adjusted_gamma(greeks: Greeks, S: npt.ArrayLike) -> FloatArray:
    """Gamma of a coin-settled option in coin: d/dS of :func:`premium_adjusted_delta`.

    ``d/dS (delta - price / S) = gamma - delta / S + price / S**2``, coin per USD per option on
    1 coin of underlying. Unlike the plain gamma it can be negative (deep in-the-money calls).
    """
    s = np.asarray(S, dtype=np.float64)
    return np.asarray(greeks.gamma - greeks.delta / s + greeks.price / (s * s), dtype=np.float64)


def coin_settled_delta(
    S: npt.ArrayLike,
    K: npt.ArrayLike,
    T: npt.ArrayLike,
    r: npt.ArrayLike,
    sigma: npt.ArrayLike,
    is_call: npt.ArrayLike,
) -> FloatArray:
    """Premium-adjusted Black-Scholes delta of a coin-settled option, in coin per option.

    Shorthand for ``premium_adjusted_delta(black_scholes(S, K, T, r, sigma, is_call), S)``.
    """
    return premium_adjusted_delta(black_scholes(S, K, T, r, sigma, is_call), S)
