"""Bands sized by the book's gamma and the cost of hedging: Whalley-Wilmott and Zakamouline.

Pure. Inputs, all from the decision's snapshot:
- Gamma: Exposure.gamma_coin, the portfolio's d(coin delta)/dS, coin per USD;
- S: the index price (USD per coin); r: engine.rate per year;
- lambda: proportional cost of the hedge instrument, UnderlyingMarket.hedge_cost = taker fee +
  half the live bid-ask spread over mid (fractions);
- tau: Exposure.option_tau, years to expiry of the options weighted by |gamma| (the options that
  move delta most decide); 0 with no options, so exp(-r tau) = 1;
- sigma (Zakamouline only): base.policy_vol, the options' |gamma|-weighted IV, else the EWMA of
  realized returns;
- risk_aversion (gamma in the papers): absolute risk aversion of an exponential utility, per USD
  of wealth. Larger: narrower band (more trading, less risk).

Both compute a half-width H in coin; the band is H converted to the aim's unit, held between
`floor` and `cap` (given in `band_unit`) so a book with no gamma still has a sane band.
A trade goes to the band's edge (`to = "edge"`, the optimal rule of both papers) unless configured.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bot.core.book import Exposure
from bot.core.market import UnderlyingMarket
from bot.core.policy.base import Aim, Band, BandUnit, Goal, policy_vol, width_in


def _check(risk_aversion: float, floor: float, cap: float) -> None:
    for name, value in (("risk_aversion", risk_aversion), ("floor", floor), ("cap", cap)):
        if not (math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be finite and > 0, got {value}")
    if floor > cap:
        raise ValueError(f"floor must be <= cap, got floor {floor} > cap {cap}")


def _clamped(
    h_coin: float, floor: float, cap: float, unit: BandUnit, exp: Exposure, aim: Aim
) -> float:
    """H (coin) in the aim's unit, held within [floor, cap] (given in `unit`). A non-finite H
    other than +inf stays nan: the shared rule then refuses the band (no trade)."""
    if math.isnan(h_coin):
        return math.nan
    lo = width_in(floor, unit, exp, aim.unit)
    hi = width_in(cap, unit, exp, aim.unit)
    h = width_in(h_coin, "coin", exp, aim.unit) if math.isfinite(h_coin) else math.inf
    return min(max(h, lo), hi)


@dataclass(frozen=True, slots=True)
class WhalleyWilmott:
    """Whalley & Wilmott (1997), "An asymptotic analysis of an optimal hedging model for option
    pricing with transaction costs", Mathematical Finance 7(3): the optimal no-trade band around
    the target, to leading order in small costs, has half-width
        H = (3/2 * exp(-r tau) * lambda * S * Gamma^2 / risk_aversion)^(1/3)   [coin]."""

    risk_aversion: float
    floor: float
    cap: float
    band_unit: BandUnit | None = None  # of floor and cap; None: the aim's unit
    aim: Aim = field(default_factory=Aim)
    to: Goal = "edge"

    def __post_init__(self) -> None:
        _check(self.risk_aversion, self.floor, self.cap)

    @property
    def name(self) -> str:
        return "whalley_wilmott"

    def half_width_coin(self, exp: Exposure, market: UnderlyingMarket) -> float:
        disc = math.exp(-market.rate * exp.option_tau)
        cube = 1.5 * disc * market.hedge_cost * exp.price * exp.gamma_coin**2 / self.risk_aversion
        return float(cube ** (1.0 / 3.0)) if cube >= 0 else math.nan

    def band_for(self, exp: Exposure, market: UnderlyingMarket, now_ms: int) -> Band:
        h = self.half_width_coin(exp, market)
        half = _clamped(h, self.floor, self.cap, self.band_unit or self.aim.unit, exp, self.aim)
        return Band(self.aim.center, half, half, self.aim.unit, self.to)


@dataclass(frozen=True, slots=True)
class ZakamoulineParts:
    """The pieces of the Zakamouline band, reported for checks: all in coin but sigma_m."""

    h0: float
    h1: float
    sigma: float
    sigma_m: float
    shift: float  # centre offset: delta(sigma) - delta(sigma_m), to first order in vanna


@dataclass(frozen=True, slots=True)
class Zakamouline:
    """Zakamouline (2006), "Efficient analytic approximation of the optimal hedging strategy for
    a European call option with transaction costs", Quantitative Finance 6(5): hedge to the
    Black-Scholes delta at a modified volatility sigma_m, within a no-trade band H0 + H1:
        K         = -4.76 * lambda^0.78 / tau^0.02 * (exp(-r tau) / sigma)^0.25
                    * (risk_aversion * S^2 * |Gamma|)^0.15
        sigma_m^2 = sigma^2 * (1 + K) for a long-gamma book, sigma^2 * (1 - K) for a short one
        H0        = lambda / (risk_aversion * S * sigma^2 * tau)
        H1        = 1.12 * lambda^0.31 * tau^0.05 * (exp(-r tau) / sigma)^0.25
                    * (|Gamma| / risk_aversion)^0.5
    (sign of Gamma: the book's gamma_coin). The hedge target moves from the options' delta at
    their IV to their delta at sigma_m; here to first order: shift = -vanna * (sigma_m - sigma),
    the same vol change applied to every option. sigma_m^2 below 0 is taken as 0. With no
    options (tau = 0) H0 is unbounded: the band is the cap and the centre the aim's."""

    risk_aversion: float
    floor: float
    cap: float
    band_unit: BandUnit | None = None
    aim: Aim = field(default_factory=Aim)
    to: Goal = "edge"

    def __post_init__(self) -> None:
        _check(self.risk_aversion, self.floor, self.cap)

    @property
    def name(self) -> str:
        return "zakamouline"

    def parts(self, exp: Exposure, market: UnderlyingMarket) -> ZakamoulineParts:
        sigma, tau, lam = policy_vol(exp, market), exp.option_tau, market.hedge_cost
        if tau <= 0:
            return ZakamoulineParts(math.inf, 0.0, sigma, sigma, 0.0)
        if not (math.isfinite(sigma) and sigma > 0):
            return ZakamoulineParts(math.nan, math.nan, sigma, math.nan, math.nan)
        g, s, ra = abs(exp.gamma_coin), exp.price, self.risk_aversion
        disc = math.exp(-market.rate * tau)
        k = -4.76 * lam**0.78 / tau**0.02 * (disc / sigma) ** 0.25 * (ra * s * s * g) ** 0.15
        sign = 1.0 if exp.gamma_coin >= 0 else -1.0
        sigma_m = sigma * math.sqrt(max(1.0 + sign * k, 0.0))
        h0 = lam / (ra * s * sigma * sigma * tau)
        h1 = 1.12 * lam**0.31 * tau**0.05 * (disc / sigma) ** 0.25 * (g / ra) ** 0.5
        return ZakamoulineParts(h0, h1, sigma, sigma_m, -exp.vanna_coin * (sigma_m - sigma))

    def band_for(self, exp: Exposure, market: UnderlyingMarket, now_ms: int) -> Band:
        p = self.parts(exp, market)
        half = _clamped(
            p.h0 + p.h1, self.floor, self.cap, self.band_unit or self.aim.unit, exp, self.aim
        )
        center = self.aim.center + width_in(p.shift, "coin", exp, self.aim.unit)
        return Band(center, half, half, self.aim.unit, self.to)
