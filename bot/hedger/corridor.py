"""The trigger corridor: the range of the underlying's index inside which the policy cannot fire.

Pure. After a decision that does not trade (delta inside the band), the delta can only leave the
band by the index moving or time passing. Over a price range [S_lo, S_hi] and a time window h the
delta moves by at most G |S - S0| + C h, with G a bound on |gamma| and C on |charm| over the
range and window:
- linear delta-one lines: gamma 0; inverse ones: |q| F / S_lo^2;
- options (Black-Scholes): phi <= 1/sqrt(2 pi), so gamma <= 1/(S_lo sigma sqrt(2 pi tau)) and
  charm <= phi |d1| / (2 tau) + phi (|r| / (sigma sqrt tau) + sigma / (2 sqrt tau)) with
  phi |d1| <= 1/sqrt(2 pi e); tau is the smallest left in the window (both grow as it shrinks);
- coin-settled options: the premium-adjusted terms (delta - P/S) add |delta|/S + P/S^2 to gamma
  (P <= S_hi for a call, K for a put) and |theta|/S to charm;
- expired options: a step at the strike, which the range never crosses; coin-settled ones add
  K/S^2 to gamma.
A quarter of the margin to the nearer band edge goes to time (that sets the window, at most
`refresh_ms`), the rest to price. The result is then shrunk by SAFETY for rounding. In "usd" the
band is on delta x S, whose slope is bounded by G S_hi + |delta| (delta itself bounded as above).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bot.core.book import Columns, FloatArray
from bot.core.greeks import MS_PER_YEAR
from bot.core.policy import Band

# How far the range may reach from the index (relative): bounds stay tight, a move past it
# just means a fresh decision.
RANGE = 0.10
SAFETY = 0.9
TIME_SHARE = 0.25
_PHI_MAX = 1.0 / math.sqrt(2.0 * math.pi)
_PHI_D1_MAX = 1.0 / math.sqrt(2.0 * math.pi * math.e)
_MIN_STDDEV = 1e-6  # below this sigma sqrt(tau) an option is treated as a step: no corridor


@dataclass(frozen=True, slots=True)
class Corridor:
    """Index range [lo, hi] in which the policy cannot fire until `until_ms`."""

    lo: float
    hi: float
    until_ms: int

    def as_dict(self) -> dict[str, float | int]:
        return {"lo": self.lo, "hi": self.hi, "until_ms": self.until_ms}


def margin(delta_coin: float, price: float, band: Band) -> float:
    """How far (in the band's unit) the delta may move before leaving the band."""
    d = delta_coin if band.unit == "coin" else delta_coin * price
    return min(band.center + band.upper - d, d - (band.center - band.lower))


def corridor(
    cols: Columns,
    qty: FloatArray,
    iv: FloatArray,
    s0: float,
    rate: float,
    now_ms: int,
    delta_coin: float,
    band: Band,
    refresh_ms: int,
    coin_equity: bool = False,
) -> Corridor | None:
    """The corridor around `s0` for a book `qty` (held + in flight, aligned with cols.keys) whose
    delta `delta_coin` is inside `band`; None when there is none worth having. `coin_equity`:
    the delta also counts the coin value of the coin-settled lines (the "usd" view with balances
    read, bot/hedger/equity.py): -qF/S for inverse delta-one lines, q P/S for coin-settled
    options, whose slopes are bounded by the same terms as their deltas' (|q|F/S_lo^2; |q|/S_lo
    per coin for options, |premium-adjusted delta| <= 1), so those terms count twice."""
    m = margin(delta_coin, s0, band)
    if not (math.isfinite(m) and m > 0.0 and math.isfinite(s0) and s0 > 0.0):
        return None
    usd = band.unit == "usd"
    s_lo, s_hi = s0 / (1.0 + RANGE), s0 * (1.0 + RANGE)
    h_ms = float(refresh_ms)
    gamma = 0.0
    charm = 0.0
    twice = 2.0 if coin_equity else 1.0
    idx = cols.opt[qty[cols.opt] != 0.0]  # options held or in flight
    size = np.abs(qty[idx]) * cols.contract_size[idx]
    k = cols.strike[idx]
    left_ms = cols.expiry_ms[idx] - now_ms
    inverse = cols.is_inverse[idx]
    dead = left_ms <= 0
    if dead.any():
        # An expired option's delta steps at its strike: the range stops short of it.
        strikes = k[dead]
        if (strikes == s0).any():
            return None
        above, below = strikes[strikes > s0], strikes[strikes < s0]
        if above.size:
            s_hi = min(s_hi, float(above.min()) * (1.0 - 1e-9))
        if below.size:
            s_lo = max(s_lo, float(below.max()) * (1.0 + 1e-9))
        inv_dead = dead & inverse
        gamma += twice * float(size[inv_dead] @ k[inv_dead]) / (s_lo * s_lo)
    alive = ~dead
    if alive.any():
        sigma = iv[idx][alive]
        tau = left_ms[alive] / MS_PER_YEAR
        if not bool(np.all(np.isfinite(sigma) & (sigma * np.sqrt(tau) > _MIN_STDDEV))):
            return None  # a zero-vol option's step moves with the discounting: decide each tick
        h_ms = min(h_ms, float(left_ms[alive].min()) / 2.0)  # tau stays >= half of what it is
    h_years = h_ms / MS_PER_YEAR
    gamma += twice * float(np.abs(qty) @ cols.inverse_usd) / (s_lo * s_lo)
    if alive.any():
        t_min = tau - h_years
        root = np.sqrt(t_min)
        g = _PHI_MAX / (s_lo * sigma * root)
        c = _PHI_D1_MAX / (2.0 * t_min) + _PHI_MAX * (
            abs(rate) / (sigma * root) + sigma / (2.0 * root)
        )
        inv, call, k_a = inverse[alive], cols.is_call[idx][alive], k[alive]
        if inv.any():
            pa = 1.0 / s_lo + np.where(call, s_hi, k_a) / (s_lo * s_lo)
            g = g + np.where(inv, pa + (1.0 / s_lo if coin_equity else 0.0), 0.0)
            theta = s_hi * _PHI_MAX * sigma / (2.0 * root) + abs(rate) * k_a
            c = c + np.where(inv, twice * theta / s_lo, 0.0)
        gamma += float(size[alive] @ g)
        charm += float(size[alive] @ c)
    scale = s_hi if usd else 1.0
    if charm > 0.0:
        h_years = min(h_years, TIME_SHARE * m / (charm * scale))
    m_price = m - charm * h_years * scale
    # |delta| over the range, for the slope of delta x S in "usd"
    slope = gamma * scale + ((abs(delta_coin) + gamma * (s_hi - s_lo)) if usd else 0.0)
    w = SAFETY * m_price / slope if slope > 0.0 else math.inf
    lo, hi = max(s_lo, s0 - w), min(s_hi, s0 + w)
    until = now_ms + int(h_years * MS_PER_YEAR)
    if not lo < s0 < hi or until <= now_ms:
        return None
    return Corridor(lo=lo, hi=hi, until_ms=until)
