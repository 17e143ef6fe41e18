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

from bot.config_sim import SimConfig
from bot.core.greeks import MS_PER_YEAR
from bot.venues.sim.correlation import Correlator
from bot.venues.sim.models import MarketModel, ModelStepper


@dataclass(frozen=True, slots=True)
class UnderlyingParams:
    vol: float  # per sqrt(year), a fraction
    drift: float = 0.0  # expected return per year
    jump_intensity: float = 0.0  # jumps per year
    jump_mean: float = 0.0  # mean log jump size
    jump_std: float = 0.0  # standard deviation of the log jump size
    # The model and its parameters (bot/venues/sim/models.py); "jumps" is the Merton model here.
    model: str = "jumps"
    kappa: float = 2.0
    theta: float = 0.36
    xi: float = 0.5
    rho: float = -0.5
    v0: float = 0.36
    vol2: float = 1.2
    drift2: float = 0.0
    switch_rate: float = 12.0
    switch_back_rate: float = 52.0

    @property
    def jump_compensator(self) -> float:
        return math.exp(self.jump_mean + 0.5 * self.jump_std**2) - 1.0


@dataclass(frozen=True, slots=True)
class MarketState:
    ts_ms: int
    prices: Mapping[str, float]  # USD per coin, by underlying


def params_of(cfg: SimConfig, model: str | None = None) -> dict[str, UnderlyingParams]:
    """Each underlying's parameters; `model` (the backtest's --market) overrides the config's.
    Defaults: heston theta = v0 = vol^2, regime vol2 = 2 vol; gbm has no jumps."""
    out = {}
    for u, x in cfg.underlyings.items():
        m = model or x.model
        theta = x.theta if x.theta is not None else x.vol * x.vol
        out[u] = UnderlyingParams(
            vol=x.vol,
            drift=x.drift,
            jump_intensity=0.0 if m == "gbm" else x.jump_intensity,
            jump_mean=x.jump_mean,
            jump_std=x.jump_std,
            model=m,
            kappa=x.kappa,
            theta=theta,
            xi=x.xi,
            rho=x.rho,
            v0=x.v0 if x.v0 is not None else theta,
            vol2=x.vol2 if x.vol2 is not None else min(2.0 * x.vol, 5.0),
            drift2=x.drift2,
            switch_rate=x.switch_rate,
            switch_back_rate=x.switch_back_rate,
        )
    return out


def stepper_for(
    params: Mapping[str, UnderlyingParams],
    names: Iterable[str],
    correlation: Correlator | None = None,
) -> MarketModel:
    """`Stepper` (bit for bit the original path) when every underlying is gbm or jumps; the
    models' stepper, with state and moving vols, when any is heston or regime. `correlation`
    mixes each step's price normals (bot/venues/sim/correlation.py)."""
    names = list(names)
    if all(params[u].model in ("gbm", "jumps") for u in names):
        return Stepper(params, names, correlation)
    return ModelStepper(params, names, correlation)


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

    dynamic_vols = False  # the options' IV stays `vol`

    def __init__(
        self,
        params: Mapping[str, UnderlyingParams],
        names: Iterable[str],
        correlation: Correlator | None = None,
    ) -> None:
        self.names = sorted(names)
        self._corr = correlation
        p = [params[u] for u in self.names]
        self.vols = {u: x.vol for u, x in zip(self.names, p, strict=True)}
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
        if self._corr is not None:
            z = self._corr.mix(z, from_ms, to_ms, rng)
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
