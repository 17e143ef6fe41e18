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
    """The bounds of the module docstring over `r` for the book `qty` (held + in flight)."""
    s_lo, s_hi = r.s_lo, r.s_hi
    one = float(np.abs(qty) @ cols.inverse_usd)
    gamma, speed = one / (s_lo * s_lo), 2.0 * one / s_lo**3
    charm = color = charm_eq = 0.0
    gamma_eq = gamma if coin_equity else 0.0
    idx = cols.opt[qty[cols.opt] != 0.0]
    size = np.abs(qty[idx]) * cols.contract_size[idx]
    k, inverse = cols.strike[idx], cols.is_inverse[idx]
    left_ms = cols.expiry_ms[idx] - now_ms
    dead = left_ms <= 0
    inv_dead = dead & inverse
    if inv_dead.any():
        sk = float(size[inv_dead] @ k[inv_dead])
        gamma += sk / (s_lo * s_lo)
        speed += 2.0 * sk / s_lo**3
        gamma_eq += sk / (s_lo * s_lo) if coin_equity else 0.0
    alive = ~dead
    if not alive.any():
        return Slopes(gamma, charm, gamma_eq, charm_eq, speed, color)
    sigma, k, inv = iv[idx][alive], k[alive], inverse[alive]
    sz = size[alive]
    t_min = left_ms[alive] / MS_PER_YEAR - r.h_ms / MS_PER_YEAR
    root = np.sqrt(t_min)
    sd = sigma * root
    g = _PHI_MAX / (s_lo * sd)
    c = _PHI_D1_MAX / (2.0 * t_min) + _PHI_MAX * (abs(rate) / sd + sigma / (2.0 * root))
    sp = (_PHI_MAX + _PHI_D1_MAX / sd) / (s_lo * s_lo * sd)
    co = (_PHI_MAX / (2.0 * t_min) + _PHI_D1_MAX * np.abs(rate + 0.5 * sigma * sigma) / sd) / (
        s_lo * sd
    )
    if inv.any():
        p_max = np.where(cols.is_call[idx][alive], s_hi, k)
        theta = s_hi * _PHI_MAX * sigma / (2.0 * root) + abs(rate) * k
        sp = sp + np.where(inv, g / s_lo + 2.0 / s_lo**2 + 2.0 * p_max / s_lo**3, 0.0)
        co = co + np.where(inv, c / s_lo + theta / s_lo**2, 0.0)
        g = g + np.where(inv, 1.0 / s_lo + p_max / (s_lo * s_lo), 0.0)
        c = c + np.where(inv, theta / s_lo, 0.0)
        if coin_equity:
            w = sz * inv
            gamma_eq += float(w @ ((1.0 + p_max / s_lo) / s_lo))
            charm_eq += float(w @ (theta / s_lo))
    gamma += float(sz @ g)
    charm += float(sz @ c)
    return Slopes(gamma, charm, gamma_eq, charm_eq, speed + float(sz @ sp), float(sz @ co))
