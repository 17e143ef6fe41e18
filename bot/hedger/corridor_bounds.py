"""Bounds on how fast the book's delta and gamma move over a price range and time window, for the
trigger corridor (corridor.py, corridor_grid.py).

Pure. Over [s_lo, s_hi] and a window of h the book's coin delta moves by at most `gamma` per USD
and `charm` per year; its gamma by at most `speed` per USD and `color` per year:
- linear delta-one lines: 0; inverse ones (q F / S): |q| F / S_lo^2 and 2 |q| F / S_lo^3;
- options (Black-Scholes), with sd = sigma sqrt(tau), tau the smallest left in the window:
  phi <= 1/sqrt(2 pi), phi |x| <= 1/sqrt(2 pi e), phi |x^2 - 1| <= 1/sqrt(2 pi), so
  gamma <= phi/(S_lo sd), charm <= phi |d1|/(2 tau) + phi (|r|/sd + sigma/(2 sqrt tau)),
  speed <= (phi + phi |d1| / sd)/(S_lo^2 sd), color <= (phi/(2 tau) + phi |d1| |r + sigma^2/2| /
  sd)/(S_lo sd);
- coin-settled options: the premium-adjusted terms (delta - P/S) add |delta|/S + P/S^2 to gamma
  (P <= S_hi for a call, K for a put), |theta|/S to charm, gamma/S + 2/S^2 + 2P/S^3 to speed and
  charm/S + |theta|/S^2 to color;
- expired options: a step at the strike, which the range never crosses; coin-settled ones add
  K/S^2 to gamma and 2K/S^3 to speed.
`gamma_eq`, `charm_eq`: the same for the coin value of the coin-settled lines, which the "usd"
view with balances read counts in the delta (bot/hedger/equity.py): -qF/S for inverse delta-one
lines, q P/S for coin-settled options (slope |delta - P/S|/S <= (1 + P/S)/S, |theta|/S in time).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bot.core.book import Columns, FloatArray
from bot.core.greeks import MS_PER_YEAR

# How far the range may reach from the index (relative): bounds stay tight, a move past it
# just means a fresh decision.
RANGE = 0.10
_PHI_MAX = 1.0 / math.sqrt(2.0 * math.pi)
_PHI_D1_MAX = 1.0 / math.sqrt(2.0 * math.pi * math.e)
_MIN_STDDEV = 1e-6  # below this sigma sqrt(tau) an option is treated as a step: no corridor


@dataclass(frozen=True, slots=True)
class Reach:
    """The price range and the time window (ms) a corridor may span."""

    s_lo: float
    s_hi: float
    h_ms: float


@dataclass(frozen=True, slots=True)
class Slopes:
    """Bounds over a Reach (see the module docstring), coin per USD and per year."""

    gamma: float
    charm: float
    gamma_eq: float
    charm_eq: float
    speed: float
    color: float


def reach(
    cols: Columns, qty: FloatArray, iv: FloatArray, s0: float, now_ms: int, refresh_ms: int
) -> Reach | None:
    """The range around `s0` that crosses no expired option's strike and the window in which
    every live option keeps at least half its time; None when an option is a step (no vol)."""
    s_lo, s_hi = s0 / (1.0 + RANGE), s0 * (1.0 + RANGE)
    h_ms = float(refresh_ms)
    idx = cols.opt[qty[cols.opt] != 0.0]  # options held or in flight
    k = cols.strike[idx]
    left_ms = cols.expiry_ms[idx] - now_ms
    dead = left_ms <= 0
    if dead.any():
        strikes = k[dead]
        if (strikes == s0).any():
            return None
        above, below = strikes[strikes > s0], strikes[strikes < s0]
        if above.size:
            s_hi = min(s_hi, float(above.min()) * (1.0 - 1e-9))
        if below.size:
            s_lo = max(s_lo, float(below.max()) * (1.0 + 1e-9))
    alive = ~dead
    if alive.any():
        sigma = iv[idx][alive]
        tau = left_ms[alive] / MS_PER_YEAR
        if not bool(np.all(np.isfinite(sigma) & (sigma * np.sqrt(tau) > _MIN_STDDEV))):
            return None  # a zero-vol option's step moves with the discounting: decide each tick
        h_ms = min(h_ms, float(left_ms[alive].min()) / 2.0)  # tau stays >= half of what it is
    return Reach(s_lo, s_hi, h_ms)


def slopes(
    cols: Columns,
    qty: FloatArray,
    iv: FloatArray,
    r: Reach,
    rate: float,
    now_ms: int,
    coin_equity: bool,
) -> Slopes:
    """The bounds of the module docstring over `r` for the book `qty` (held + in flight): each
    a sum over options of a few per-option terms, taken in one product."""
    s_lo, s_hi = r.s_lo, r.s_hi
    one = float(np.abs(qty) @ cols.inverse_usd)
    idx = cols.opt[qty[cols.opt] != 0.0]
    size = np.abs(qty[idx]) * cols.contract_size[idx]
    k, inverse = cols.strike[idx], cols.is_inverse[idx]
    left_ms = cols.expiry_ms[idx] - now_ms
    dead = left_ms <= 0
    sk = float(size[dead & inverse] @ k[dead & inverse])  # expired coin-settled: K/S^2
    gamma = (one + sk) / (s_lo * s_lo)
    speed = 2.0 * (one + sk) / s_lo**3
    gamma_eq = gamma if coin_equity else 0.0
    alive = ~dead
    if not alive.any():
        return Slopes(gamma, 0.0, gamma_eq, 0.0, speed, 0.0)
    sigma, k = iv[idx][alive], k[alive]
    t_min = left_ms[alive] / MS_PER_YEAR - r.h_ms / MS_PER_YEAR
    root = np.sqrt(t_min)
    x, y, z = 1.0 / (sigma * root), 1.0 / t_min, sigma / root  # 1/sd, 1/tau, sigma/sqrt(tau)
    p_max = np.where(cols.is_call[idx][alive], s_hi, k)
    b = np.abs(rate + 0.5 * sigma * sigma)
    terms = np.stack((x, y, z, x * x, x * y, x * x * b, p_max, k))
    sz = size[alive]
    sx, sy, sz_, sxx, sxy, sxxb, _, _ = terms @ sz  # over every option
    wn = float(sz @ inverse[alive])
    wx, wy, wz, _, _, _, wp, wk = terms @ (sz * inverse[alive])  # over coin-settled ones
    pm, pd, ar = _PHI_MAX, _PHI_D1_MAX, abs(rate)
    theta = s_hi * pm / 2.0 * wz + ar * wk  # sum of |theta| of the coin-settled options
    pa_gamma = wn / s_lo + wp / (s_lo * s_lo)  # |delta|/S + P/S^2 of the coin-settled ones
    gamma += pm / s_lo * sx + pa_gamma
    charm = pd / 2.0 * sy + pm * (ar * sx + sz_ / 2.0) + theta / s_lo
    speed += (pm * sx + pd * sxx) / (s_lo * s_lo)
    speed += pm / s_lo * wx / s_lo + 2.0 * wn / s_lo**2 + 2.0 * wp / s_lo**3
    color = (pm / 2.0 * sxy + pd * sxxb) / s_lo
    color += (pd / 2.0 * wy + pm * (ar * wx + wz / 2.0)) / s_lo + theta / (s_lo * s_lo)
    if coin_equity:
        gamma_eq += pa_gamma
        charm_eq = theta / s_lo
    else:
        charm_eq = 0.0
    return Slopes(gamma, charm, gamma_eq, charm_eq, speed, color)
