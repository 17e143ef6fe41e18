"""Price-path models beside the default GBM + jumps: gbm, heston and regime, per underlying.

Each model is a pure step function of (state, params, dt, rng); `ModelStepper` holds the state
(variance, regime) between ticks and gives the exchange the same `advance` as `Stepper`, plus
each underlying's instantaneous vol, which the sim's options use as their implied vol:

- gbm, jumps: constant vol; the options' IV is `vol`.
- heston: dS/S = mu dt + sqrt(v) dW1, dv = kappa (theta - v) dt + xi sqrt(v) dW2,
  corr(dW1, dW2) = rho, stepped with full truncation (v below zero counts as zero); IV = sqrt(v).
- regime: two GBM regimes (vol, drift) and (vol2, drift2); calm switches to stressed with
  intensity `switch_rate` per year and back with `switch_back_rate`; IV = the regime's vol.

Every step makes the same number of draws per underlying whatever happens (3 normals and one
uniform), in sorted name order, so a seed gives one path. The stepper's state is not saved with
the exchange's state file: a restarted paper exchange starts heston at v0 and regime calm.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np

from bot.core.greeks import MS_PER_YEAR
from bot.venues.sim.correlation import Correlator

MIN_VOL = 0.01  # the options' IV floor when heston's variance touches zero


class ModelParams(Protocol):
    @property
    def model(self) -> str: ...
    @property
    def vol(self) -> float: ...
    @property
    def drift(self) -> float: ...
    @property
    def jump_intensity(self) -> float: ...
    @property
    def jump_mean(self) -> float: ...
    @property
    def jump_std(self) -> float: ...
    @property
    def kappa(self) -> float: ...
    @property
    def theta(self) -> float: ...
    @property
    def xi(self) -> float: ...
    @property
    def rho(self) -> float: ...
    @property
    def v0(self) -> float: ...
    @property
    def vol2(self) -> float: ...
    @property
    def drift2(self) -> float: ...
    @property
    def switch_rate(self) -> float: ...
    @property
    def switch_back_rate(self) -> float: ...


class MarketModel(Protocol):
    """What the exchange steps its prices with (`Stepper`, `ModelStepper`, a replay)."""

    names: list[str]
    dynamic_vols: bool  # True: read `vols` after every advance for the options' IV

    @property
    def vols(self) -> Mapping[str, float]: ...

    def advance(
        self, prices: Sequence[float], from_ms: int, to_ms: int, rng: np.random.Generator
    ) -> list[float]: ...


@dataclass(frozen=True, slots=True)
class Draws:
    z1: float
    z2: float
    z3: float
    u: float


@dataclass(frozen=True, slots=True)
class ModelState:
    var: float  # heston's variance (the others: vol^2 of the current regime)
    regime: int  # 0 calm, 1 stressed (regime model only)


def initial(p: ModelParams) -> ModelState:
    return ModelState(var=p.v0 if p.model == "heston" else p.vol * p.vol, regime=0)


def inst_vol(p: ModelParams, s: ModelState) -> float:
    if p.model == "heston":
        return max(math.sqrt(max(s.var, 0.0)), MIN_VOL)
    if p.model == "regime":
        return p.vol2 if s.regime else p.vol
    return p.vol


def step_one(
    p: ModelParams, s: ModelState, dt: float, d: Draws, jumps: int
) -> tuple[float, ModelState]:
    """The log return over dt (years) and the state after it."""
    sq = math.sqrt(dt)
    if p.model == "heston":
        v = max(s.var, 0.0)
        zv = p.rho * d.z1 + math.sqrt(max(1.0 - p.rho * p.rho, 0.0)) * d.z2
        x = (p.drift - 0.5 * v) * dt + math.sqrt(v) * sq * d.z1
        var = s.var + p.kappa * (p.theta - v) * dt + p.xi * math.sqrt(v) * sq * zv
        return x, ModelState(var=var, regime=0)
    if p.model == "regime":
        # Switch first (probability 1 - exp(-q dt) over the step), then move in the new regime.
        q = p.switch_back_rate if s.regime else p.switch_rate
        regime = 1 - s.regime if d.u < -math.expm1(-q * dt) else s.regime
        vol, drift = (p.vol2, p.drift2) if regime else (p.vol, p.drift)
        x = (drift - 0.5 * vol * vol) * dt + vol * sq * d.z1
        return x, ModelState(var=vol * vol, regime=regime)
    x = (p.drift - 0.5 * p.vol * p.vol) * dt + p.vol * sq * d.z1
    if p.model == "jumps":
        comp = math.exp(p.jump_mean + 0.5 * p.jump_std**2) - 1.0
        x += -p.jump_intensity * comp * dt + jumps * p.jump_mean
        x += math.sqrt(jumps) * p.jump_std * d.z3
    return x, s


class ModelStepper:
    """Every underlying on its own model, with the state carried from tick to tick."""

    dynamic_vols = True

    def __init__(
        self,
        params: Mapping[str, ModelParams],
        names: Iterable[str],
        correlation: Correlator | None = None,
    ) -> None:
        self.names = sorted(names)
        self._corr = correlation
        self._params = [params[u] for u in self.names]
        self._state = [initial(p) for p in self._params]

    @property
    def vols(self) -> dict[str, float]:
        return {
            u: inst_vol(p, s) for u, p, s in zip(self.names, self._params, self._state, strict=True)
        }

    @property
    def regimes(self) -> list[int]:
        return [s.regime for s in self._state]

    @property
    def variances(self) -> list[float]:
        return [s.var for s in self._state]

    def advance(
        self, prices: Sequence[float], from_ms: int, to_ms: int, rng: np.random.Generator
    ) -> list[float]:
        dt = max(to_ms - from_ms, 0) / MS_PER_YEAR
        if dt == 0.0 or not self.names:
            return list(prices)
        draws: list[tuple[Draws, int]] = []
        for p in self._params:
            z = rng.standard_normal(3)
            u = float(rng.random())
            lam = p.jump_intensity * dt if p.model == "jumps" else 0.0
            jumps = int(rng.poisson(lam)) if lam > 0.0 else 0
            draws.append((Draws(float(z[0]), float(z[1]), float(z[2]), u), jumps))
        if self._corr is not None:  # the price normals (z1) move together
            z1 = self._corr.mix([d.z1 for d, _ in draws], from_ms, to_ms, rng)
            draws = [(replace(d, z1=z), j) for (d, j), z in zip(draws, z1, strict=True)]
        out = []
        for n, (p, s, (d, jumps)) in enumerate(zip(self._params, self._state, draws, strict=True)):
            x, self._state[n] = step_one(p, s, dt, d, jumps)
            out.append(prices[n] * math.exp(x))
        return out
