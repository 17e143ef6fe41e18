"""Synthetic market: geometric Brownian motion with Merton jumps, one path per underlying.

Pure and seedable: time and the numpy Generator are arguments, so a seed gives one path.
The log return over dt (years) of each underlying is

    (mu - sigma^2/2 - lambda*k) dt + sigma sqrt(dt) Z + sum of N jumps ~ Normal(m, s^2),
    N ~ Poisson(lambda dt),  k = exp(m + s^2/2) - 1,

so `drift` is the expected return and the jumps add variance, not drift (Merton 1976).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from bot.core.greeks import MS_PER_YEAR


@dataclass(frozen=True, slots=True)
class UnderlyingParams:
    vol: float  # per sqrt(year), a fraction
    drift: float = 0.0  # expected return per year
    jump_intensity: float = 0.0  # jumps per year
    jump_mean: float = 0.0  # mean log jump size
    jump_std: float = 0.0  # standard deviation of the log jump size

    @property
    def jump_compensator(self) -> float:
        return math.exp(self.jump_mean + 0.5 * self.jump_std**2) - 1.0


@dataclass(frozen=True, slots=True)
class MarketState:
    ts_ms: int
    prices: Mapping[str, float]  # USD per coin, by underlying


def step(
    state: MarketState,
    params: Mapping[str, UnderlyingParams],
    to_ms: int,
    rng: np.random.Generator,
) -> MarketState:
    """The market at `to_ms`. Underlyings are drawn in sorted name order, and a fixed number of
    draws is made per call whatever the parameters, so one seed gives one path."""
    names = sorted(state.prices)
    dt = max(to_ms - state.ts_ms, 0) / MS_PER_YEAR
    if dt == 0.0 or not names:
        return MarketState(ts_ms=max(to_ms, state.ts_ms), prices=dict(state.prices))
    n = len(names)
    p = [params[u] for u in names]
    vol = np.array([x.vol for x in p])
    drift = np.array([x.drift for x in p])
    lam = np.array([x.jump_intensity for x in p])
    jm = np.array([x.jump_mean for x in p])
    js = np.array([x.jump_std for x in p])
    comp = np.array([x.jump_compensator for x in p])

    z = rng.standard_normal(n)
    jumps = rng.poisson(lam * dt)
    jz = rng.standard_normal(n)
    log_ret = (
        (drift - 0.5 * vol * vol - lam * comp) * dt
        + vol * math.sqrt(dt) * z
        + jumps * jm
        + np.sqrt(jumps) * js * jz
    )
    s0 = np.array([state.prices[u] for u in names])
    s1 = s0 * np.exp(log_ret)
    return MarketState(ts_ms=to_ms, prices={u: float(s) for u, s in zip(names, s1, strict=True)})
