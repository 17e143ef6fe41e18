"""Synthetic market: geometric Brownian motion with Merton jumps, one path per underlying.

Pure and seedable: time and the numpy Generator are arguments, so a seed gives one path.
The log return over dt (years) of each underlying is

    (mu - sigma^2/2 - lambda*k) dt + sigma sqrt(dt) Z + sum of N jumps ~ Normal(m, s^2),
    N ~ Poisson(lambda dt),  k = exp(m + s^2/2) - 1,

so `drift` is the expected return and the jumps add variance, not drift (Merton 1976).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from bot.config import SimConfig
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


def params_of(cfg: SimConfig) -> dict[str, UnderlyingParams]:
    return {
        u: UnderlyingParams(
            vol=x.vol,
            drift=x.drift,
            jump_intensity=x.jump_intensity,
            jump_mean=x.jump_mean,
            jump_std=x.jump_std,
        )
        for u, x in cfg.underlyings.items()
    }


def rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    """The market's generator and the order flow's, both from one seed."""
    market, orders = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(market), np.random.default_rng(orders)


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


class Stepper:
    """`step` for a fixed set of underlyings, set up once: the exchange calls it on every tick.

    It makes the same draws from the generator and the same IEEE operations per underlying as
    `step` (Python floats for the arithmetic, numpy only for the draws and exp), so a seed gives
    the same path bit for bit; tests hold it to that. `step` sets up numpy arrays on every call,
    which costs more than the arithmetic for a handful of underlyings.
    """

    def __init__(self, params: Mapping[str, UnderlyingParams], names: Iterable[str]) -> None:
        self.names = sorted(names)
        p = [params[u] for u in self.names]
        # The same expression as in `step`, evaluated once: vol, drift and jumps are fixed.
        drift = [x.drift - 0.5 * x.vol * x.vol - x.jump_intensity * x.jump_compensator for x in p]
        self._rows = [
            (a, x.vol, x.jump_intensity, x.jump_mean, x.jump_std)
            for a, x in zip(drift, p, strict=True)
        ]

    def advance(
        self, prices: Sequence[float], from_ms: int, to_ms: int, rng: np.random.Generator
    ) -> list[float]:
        """Prices (in `names` order) `to_ms - from_ms` later; unchanged, and no draws, when no
        time passes."""
        n = len(self.names)
        dt = max(to_ms - from_ms, 0) / MS_PER_YEAR
        if dt == 0.0 or n == 0:
            return list(prices)
        z = _normals(rng, n)
        # A Poisson draw with mean 0 takes nothing from the generator, as in `step`.
        jumps = [int(rng.poisson(r[2] * dt)) if r[2] * dt > 0.0 else 0 for r in self._rows]
        jz = _normals(rng, n)
        sqrt_dt = math.sqrt(dt)
        log_ret = []
        for (a, vol, _, jm, js), zi, j, jzi in zip(self._rows, z, jumps, jz, strict=True):
            x = a * dt + vol * sqrt_dt * zi
            if j:  # without a jump both terms are zero, and adding zero changes nothing
                x = x + j * jm + math.sqrt(j) * js * jzi
            log_ret.append(x)
        if n == 1:
            return [prices[0] * float(np.exp(log_ret[0]))]
        growth = np.exp(log_ret).tolist()
        return [s * g for s, g in zip(prices, growth, strict=True)]


def _normals(rng: np.random.Generator, n: int) -> list[float]:
    """n standard normal draws (one draw alone skips building an array: the same number)."""
    return [float(rng.standard_normal())] if n == 1 else rng.standard_normal(n).tolist()
