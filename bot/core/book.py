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

import math
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

import numpy as np
import numpy.typing as npt

from bot.core.greeks import MS_PER_YEAR, black_scholes, black_scholes_1d, year_fractions
from bot.core.instruments import Instrument, Kind, OptionType
from bot.core.market import UnderlyingMarket

HedgeView = Literal["usd", "coin"]
LineKey = tuple[str, str]  # (account, symbol): one line of the book
FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True)
class Columns:
    """The instruments of one underlying as columns, built once per set of instruments.

    Besides the per-line columns it keeps what every evaluation needs precomputed: the option
    columns' indices and terms, and the delta-one lines' coin delta per contract split into
    linear (constant) and inverse (contract size over the price) parts."""

    underlying: str
    keys: tuple[LineKey, ...]
    is_spot: BoolArray
    is_option: BoolArray
    is_inverse: BoolArray
    is_call: BoolArray
    contract_size: FloatArray
    strike: FloatArray  # nan where not an option
    expiry_ms: npt.NDArray[np.int64]  # 0 where none
    opt: npt.NDArray[np.intp]  # column indices of the options
    linear_usd: FloatArray  # coin delta per contract of linear delta-one lines, "usd" view
    linear_coin: FloatArray  # the same with spot left out ("coin" view)
    inverse_usd: FloatArray  # contract size (USD) of inverse delta-one lines, 0 elsewhere
    # per line as plain Python values, for small books priced without numpy:
    # (is_option, contract_size, strike, expiry_ms, is_call, is_inverse, is_spot)
    terms: tuple[tuple[bool, float, float, int, bool, bool, bool], ...]
    # the option columns' terms, gathered once (an evaluation mostly prices every option)
    opt_strike: FloatArray
    opt_expiry_ms: npt.NDArray[np.int64]
    opt_call: BoolArray
    opt_inverse: FloatArray  # 1.0 for a coin-settled option, else 0.0
    opt_size: FloatArray

    @staticmethod
    def of(underlying: str, lines: Mapping[LineKey, Instrument]) -> Columns:
        # Sorted: sums over the columns then do not depend on the order lines were found in (a
        # set walked in hash order, which differs between processes), so runs are reproducible.
        keys = tuple(sorted(k for k, i in lines.items() if i.underlying == underlying))
        ins = [lines[k] for k in keys]
        is_spot = np.array([i.kind is Kind.SPOT for i in ins], dtype=bool)
        is_option = np.array([i.kind is Kind.OPTION for i in ins], dtype=bool)
        is_inverse = np.array([i.is_inverse for i in ins], dtype=bool)
        size = np.array([i.contract_size for i in ins], dtype=np.float64)
        one = ~is_option
        linear_usd = np.where(one & ~is_inverse, size, 0.0)
        opt = np.flatnonzero(is_option)
        strike = np.array([i.strike if i.strike else np.nan for i in ins], dtype=np.float64)
        expiry = np.array([i.expiry_ms or 0 for i in ins], dtype=np.int64)
        is_call = np.array([i.option_type is OptionType.CALL for i in ins], dtype=bool)
        return Columns(
            underlying=underlying,
            keys=keys,
            is_spot=is_spot,
            is_option=is_option,
            is_inverse=is_inverse,
            is_call=is_call,
            contract_size=size,
            strike=strike,
            expiry_ms=expiry,
            opt=opt,
            linear_usd=linear_usd,
            linear_coin=np.where(is_spot, 0.0, linear_usd),
            inverse_usd=np.where(one & is_inverse, size, 0.0),
            terms=tuple(
                (
                    i.kind is Kind.OPTION,
                    i.contract_size,
                    i.strike or math.nan,
                    i.expiry_ms or 0,
                    i.option_type is OptionType.CALL,
                    i.is_inverse,
                    i.kind is Kind.SPOT,
                )
                for i in ins
            ),
            opt_strike=strike[opt],
            opt_expiry_ms=expiry[opt],
            opt_call=is_call[opt],
            opt_inverse=is_inverse[opt].astype(np.float64),
            opt_size=size[opt],
        )

    def quantities(self, qty: Mapping[LineKey, float]) -> FloatArray:
        return np.array([qty.get(k, 0.0) for k in self.keys], dtype=np.float64)

    def option_ivs(self, ivs: Mapping[LineKey, float], default: float) -> FloatArray:
        """IV of every column (nan where not an option), `default` where a line has none."""
        opt = zip(self.keys, self.is_option, strict=True)
        return np.array([ivs.get(k, default) if o else np.nan for k, o in opt], dtype=np.float64)


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
    exp = exposure_of(cols, held, pending, *args, view, external_delta_coin, market.ts_ms)
    return book_stats(cols, held + pending, *args, external_delta_coin).on(exp)


@dataclass(frozen=True, slots=True)
class BookStats:
    """See book_stats."""

    gross_usd: float
    option_tau: float = 0.0
    option_iv: float = math.nan
    vanna_coin: float = 0.0

    def on(self, exp: Exposure) -> Exposure:
        return replace(
            exp,
            gross_usd=self.gross_usd,
            option_tau=self.option_tau,
            option_iv=self.option_iv,
            vanna_coin=self.vanna_coin,
        )


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
    opt = cols.is_option
    coin_per = np.where(
        opt,
        cols.contract_size,
        np.where(cols.is_inverse, cols.contract_size / s, cols.contract_size),
    )
    gross_usd = (float(np.abs(qty) @ coin_per) + abs(external_delta_coin)) * s
    q = qty[opt]
    if not q.any():
        return BookStats(gross_usd)
    t = year_fractions(cols.expiry_ms[opt], now_ms)
    sigma = iv[opt]
    g = black_scholes(s, cols.strike[opt], t, rate, sigma, cols.is_call[opt])
    size = cols.contract_size[opt]
    inv = cols.is_inverse[opt]
    gamma = np.where(inv, g.gamma - g.delta / s + g.price / (s * s), g.gamma) * size
    stddev = sigma * np.sqrt(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        d2 = (np.log(s / cols.strike[opt]) + (rate - 0.5 * sigma * sigma) * t) / stddev
        bs_vanna = np.where(stddev > 0, -(g.vega / s) * d2 / stddev, 0.0)
    vanna = np.where(inv, bs_vanna - g.vega / s, bs_vanna) * size
    weight = np.abs(q * gamma)
    total = float(weight.sum())
    return BookStats(
        gross_usd,
        option_tau=float(weight @ t) / total if total > 0 else 0.0,
        option_iv=float(weight @ np.nan_to_num(sigma)) / total if total > 0 else math.nan,
        vanna_coin=float(q @ vanna),
    )


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
) -> Exposure:
    """`exposure` on arrays aligned with `cols.keys` (quantities held and in flight, IVs): the
    hedger's path, with no dict walked per evaluation. Only options held or in flight are
    priced; a few of them are priced one by one (numpy's per-call cost dominates small
    arrays), more of them in one vectorized kernel."""
    if len(cols.terms) <= SMALL_BOOK:
        return _exposure_small(
            cols, held, pending, s, iv, rate, now_ms, view, external_delta_coin, ts_ms
        )
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
            o = _options_scalar(cols, live, qty, pending, s, iv, rate, now_ms)
        else:
            o = _options_vector(cols, live, qty, pending, s, iv, rate, now_ms)
        delta += o[0]
        gamma += o[1]
        vega, theta = o[2], o[3]
        in_flight += o[4]
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
    )


# A book of at most this many lines is summed in plain Python; in a larger one, at most
# SCALAR_MAX priced options go one by one through `option_scalar`, more go to numpy.
SMALL_BOOK = 16
SCALAR_MAX = 12
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


def _exposure_small(
    cols: Columns,
    held: FloatArray,
    pending: FloatArray,
    s: float,
    iv: FloatArray,
    r: float,
    now_ms: int,
    view: HedgeView,
    external_delta_coin: float,
    ts_ms: int,
) -> Exposure:
    """`exposure_of` in plain floats: `option_scalar` inlined (a call per option costs as much
    as its arithmetic), same formulas and degenerate cases."""
    held_l, pending_l, iv_l = held.tolist(), pending.tolist(), iv.tolist()
    no_spot = view == "coin"
    log_s = math.log(s)
    delta = gamma = vega = theta = flight = 0.0
    for i, (is_opt, size, k, expiry, call, inverse, spot) in enumerate(cols.terms):
        p = pending_l[i]
        q = held_l[i] + p
        if q == 0.0 and p == 0.0:
            continue
        if is_opt:
            t = max(expiry - now_ms, 0) / MS_PER_YEAR
            sigma = iv_l[i]
            sign = 1.0 if call else -1.0
            kdf = k * math.exp(-r * t) if r != 0.0 else k
            sqrt_t = math.sqrt(t)
            stddev = sigma * sqrt_t
            if stddev > _MIN_STDDEV:
                d1 = (log_s - math.log(k) + (r + 0.5 * sigma * sigma) * t) / stddev
                n1 = 0.5 * math.erfc(-sign * d1 * _SQRT1_2)
                n2 = 0.5 * math.erfc(-sign * (d1 - stddev) * _SQRT1_2)
                pdf = math.exp(-0.5 * d1 * d1) * _INV_SQRT_2PI
                price = sign * (s * n1 - kdf * n2)
                d = sign * n1
                g = pdf / (s * stddev)
                if inverse:
                    price = price if price > 0.0 else 0.0
                    g = g - d / s + price / (s * s)
                    d = d - price / s
                vega += q * size * s * pdf * sqrt_t
                theta += q * size * (-s * pdf * sigma / (2.0 * sqrt_t) - sign * r * kdf * n2)
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
        in_flight_coin=flight,
    )


def _options_scalar(
    cols: Columns,
    live: npt.NDArray[np.intp],
    qty: FloatArray,
    pending: FloatArray,
    s: float,
    iv: FloatArray,
    r: float,
    now_ms: int,
) -> tuple[float, float, float, float, float]:
    delta = gamma = vega = theta = flight = 0.0
    for i in live.tolist():
        _, size, k, expiry, call, inverse, _ = cols.terms[i]
        t = max(expiry - now_ms, 0) / MS_PER_YEAR
        d, g, v, th = option_scalar(s, k, t, r, float(iv[i]), call, inverse)
        q = float(qty[i]) * size
        delta += q * d
        gamma += q * g
        vega += q * v
        theta += q * th
        flight += float(pending[i]) * size * d
    return delta, gamma, vega, theta, flight


def _options_vector(
    cols: Columns,
    live: npt.NDArray[np.intp],
    qty: FloatArray,
    pending: FloatArray,
    s: float,
    iv: FloatArray,
    r: float,
    now_ms: int,
) -> tuple[float, float, float, float, float]:
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
    # line_greeks), as sums: only the inverse options' share of the price and delta counts.
    qi = q * inverse
    price_i = float(qi @ g.price)
    delta -= price_i / s
    gamma += (price_i / s - float(qi @ g.delta)) / s
    flight -= float((p * inverse) @ g.price) / s
    return delta, gamma, float(q @ g.vega), float(q @ g.theta), flight
