"""The portfolio book: positions as numpy columns, greeks aggregated per underlying.

Pure: positions, prices and time come in as arguments. Units (see design.md):
- spot and linear contracts: coin delta = qty x contract_size;
- inverse perps and futures (contract size in USD): coin delta = qty x contract_size / price;
- linear options: Black-Scholes delta x contract_size x qty;
- inverse (coin-settled) options: premium-adjusted delta (BS delta - price/S) x contract_size x qty.
Hedge views: "usd" also counts held coin, so the account's USD value is flat at target delta 0
(the coin equity comes in as `external_delta_coin`, bot/core/equity.py); "coin" counts only
derivatives and leaves held coin alone.

Layout: the columns in book_columns.py, the summing kernels of `exposure_of` in
book_kernels.py; the types and kernels other modules use are importable from here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np

from bot.core import book_kernels
from bot.core.book_columns import BoolArray, Columns, FloatArray, HedgeView, LineKey
from bot.core.book_kernels import option_scalar
from bot.core.greeks import black_scholes, black_scholes_1d, year_fractions
from bot.core.market import UnderlyingMarket

__all__ = [
    "NO_STATS",
    "BookStats",
    "BoolArray",
    "Columns",
    "Exposure",
    "FloatArray",
    "HedgeView",
    "LineGreeks",
    "LineKey",
    "book_stats",
    "exposure",
    "exposure_of",
    "line_greeks",
    "option_scalar",
]


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
    # Trigger policies (bot/core/policy) size bands from these; see exposure() for definitions.
    gross_usd: float = 0.0  # gross notional: sum over lines of |coin exposure| x price, USD
    option_tau: float = 0.0  # |gamma|-weighted years to expiry of the options; 0: no options
    option_iv: float = math.nan  # |gamma|-weighted implied vol of the options; nan: none
    vanna_coin: float = 0.0  # d(delta_coin)/d(vol), per 1.00 of volatility, options only

    def delta_in(self, unit: Literal["coin", "usd"]) -> float:
        return self.delta_coin if unit == "coin" else self.delta_usd


@dataclass(frozen=True, slots=True)
class LineGreeks:
    """Per-contract greeks of every column at one price (coin units)."""

    delta: FloatArray
    gamma: FloatArray
    vega_usd: FloatArray
    theta_usd: FloatArray
    vanna: FloatArray  # d delta / d vol per 1.00 of volatility (coin)
    tau: FloatArray  # years to expiry; 0 where not an option
    iv: FloatArray  # the volatility the line was valued with; nan where not an option


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
    vanna = np.zeros(n)
    tau = np.zeros(n)
    ivs = np.full(n, np.nan)
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
        # Vanna of Black-Scholes: d delta / d sigma = -(vega / S) d2 / (sigma sqrt(t)); the
        # premium-adjusted delta of a coin-settled option also loses d(price/S)/d sigma = vega/S.
        stddev = iv * np.sqrt(t)
        live = stddev > 0
        with np.errstate(divide="ignore", invalid="ignore"):
            d2 = (np.log(s / cols.strike[opt]) + (market.rate - 0.5 * iv * iv) * t) / stddev
            bs_vanna = np.where(live, -(g.vega / s) * d2 / stddev, 0.0)
        vanna[opt] = np.where(inv, bs_vanna - g.vega / s, bs_vanna) * size
        tau[opt] = t
        ivs[opt] = iv
    return LineGreeks(
        delta=delta, gamma=gamma, vega_usd=vega, theta_usd=theta, vanna=vanna, tau=tau, iv=ivs
    )


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
    held, pending = cols.quantities(positions), cols.quantities(in_flight)
    iv = cols.option_ivs(market.option_iv, market.vol)
    args = (market.index, iv, market.rate, now_ms)
    stats = book_stats(cols, held + pending, *args, external_delta_coin)
    return exposure_of(cols, held, pending, *args, view, external_delta_coin, market.ts_ms, stats)


@dataclass(frozen=True, slots=True)
class BookStats:
    """See book_stats."""

    gross_usd: float
    option_tau: float = 0.0
    option_iv: float = math.nan
    vanna_coin: float = 0.0


NO_STATS = BookStats(0.0)  # an Exposure's own defaults: no statistics asked for


def book_stats(
    cols: Columns,
    qty: FloatArray,
    s: float,
    iv: FloatArray,
    rate: float,
    now_ms: int,
    external_delta_coin: float = 0.0,
) -> BookStats:
    """The numbers cost-aware trigger policies size their bands from (Exposure's gross_usd,
    option_tau, option_iv, vanna_coin), for `qty` contracts per column (held and in flight).
    Gross notional: delta-one lines count their coin exposure, options their underlying amount
    (contract size, not delta-adjusted); delta reported from elsewhere counts as itself. The
    option book's expiry and vol are each option's weighted by the share of the book's gamma it
    carries (|qty x gamma|), so the options that move delta most decide; none held: tau 0, iv
    nan. Vanna: d(delta_coin)/d(vol) per 1.00 of volatility, premium-adjusted for coin-settled
    options (see line_greeks)."""
    coin_per = np.where(
        cols.is_option,
        cols.contract_size,
        np.where(cols.is_inverse, cols.contract_size / s, cols.contract_size),
    )
    gross_usd = (float(np.abs(qty) @ coin_per) + abs(external_delta_coin)) * s
    q = qty[cols.opt]
    if not q.any():
        return BookStats(gross_usd)
    t = year_fractions(cols.opt_expiry_ms, now_ms)
    sigma = iv[cols.opt]
    fast = None
    if not cols.opt_inverse.any():
        fast = book_kernels.linear_gamma_vanna(s, cols.opt_strike, t, rate, sigma)
    gamma, vanna = fast if fast is not None else _gamma_vanna(cols, s, t, rate, sigma)
    size = cols.opt_size
    weight = np.abs(q * (gamma * size))
    total = float(weight.sum())
    # IVs are all finite once every option has a ticker (Halts.reason waits for that).
    finite = sigma if np.isfinite(sigma).all() else np.nan_to_num(sigma)
    return BookStats(
        gross_usd,
        option_tau=float(weight @ t) / total if total > 0 else 0.0,
        option_iv=float(weight @ finite) / total if total > 0 else math.nan,
        vanna_coin=float(q @ (vanna * size)),
    )


def _gamma_vanna(
    cols: Columns, s: float, t: FloatArray, rate: float, sigma: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Gamma and vanna of one long option of each option column on 1 coin, premium-adjusted
    for coin-settled options (see line_greeks): any book (book_kernels.linear_gamma_vanna is
    the common case's shortcut, with the same floats)."""
    g = black_scholes_1d(s, cols.opt_strike, t, rate, sigma, cols.opt_call)
    inv = cols.opt_inverse != 0.0
    gamma = np.where(inv, g.gamma - g.delta / s + g.price / (s * s), g.gamma)
    stddev = sigma * np.sqrt(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        d2 = (np.log(s / cols.opt_strike) + (rate - 0.5 * sigma * sigma) * t) / stddev
        bs_vanna = np.where(stddev > 0, -(g.vega / s) * d2 / stddev, 0.0)
    return gamma, np.where(inv, bs_vanna - g.vega / s, bs_vanna)


# A book of at most this many lines is summed in plain Python; in a larger one, at most
# SCALAR_MAX priced options go one by one through `option_scalar`, more go to numpy.
SMALL_BOOK = 16
SCALAR_MAX = 12


def exposure_of(
    cols: Columns,
    held: FloatArray,
    pending: FloatArray,
    s: float,
    iv: FloatArray,
    rate: float,
    now_ms: int,
    view: HedgeView,
    external_delta_coin: float = 0.0,
    ts_ms: int = 0,
    stats: BookStats = NO_STATS,
) -> Exposure:
    """`exposure` on arrays aligned with `cols.keys` (quantities held and in flight, IVs): the
    hedger's path, with no dict walked per evaluation. Only options held or in flight are
    priced; a few of them are priced one by one (numpy's per-call cost dominates small
    arrays), more of them in one vectorized kernel. `stats`: `book_stats` of the same book,
    for the policies that size bands from them."""
    if len(cols.terms) <= SMALL_BOOK:
        sums = book_kernels.sums_small(cols, held, pending, s, iv, rate, now_ms, view)
    else:
        sums = _sums_large(cols, held, pending, s, iv, rate, now_ms, view)
    delta, gamma, vega, theta, in_flight = sums
    delta += external_delta_coin
    return Exposure(
        underlying=cols.underlying,
        ts_ms=ts_ms,
        price=s,
        delta_coin=delta,
        delta_usd=delta * s,
        gamma_coin=gamma,
        vega_usd=vega,
        theta_usd=theta,
        in_flight_coin=in_flight,
        gross_usd=stats.gross_usd,
        option_tau=stats.option_tau,
        option_iv=stats.option_iv,
        vanna_coin=stats.vanna_coin,
    )


def _sums_large(
    cols: Columns,
    held: FloatArray,
    pending: FloatArray,
    s: float,
    iv: FloatArray,
    rate: float,
    now_ms: int,
    view: HedgeView,
) -> book_kernels.Sums:
    """The sums of a larger book: delta-one lines as dot products, the priced options one by
    one or vectorized (SCALAR_MAX)."""
    qty = held + pending
    linear = cols.linear_usd if view == "usd" else cols.linear_coin
    inv = float(qty @ cols.inverse_usd)
    delta = float(qty @ linear) + inv / s
    gamma = -inv / (s * s)
    in_flight = float(pending @ linear) + float(pending @ cols.inverse_usd) / s
    vega = theta = 0.0
    if cols.opt.size:
        q_opt = qty[cols.opt]
        live = cols.opt[q_opt != 0.0]
        if live.size <= SCALAR_MAX:
            o = book_kernels.options_scalar(cols, live, qty, pending, s, iv, rate, now_ms)
        else:
            o = book_kernels.options_vector(cols, live, qty, pending, s, iv, rate, now_ms)
        delta += o[0]
        gamma += o[1]
        vega, theta = o[2], o[3]
        in_flight += o[4]
    return delta, gamma, vega, theta, in_flight
