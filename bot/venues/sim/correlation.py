"""Correlated moves of the simulated underlyings: a Cholesky factor applied to each step's
standard normals (`sim.correlation`), and a breakdown regime in which every pairwise
correlation becomes `break_rho`, from a set time after the start or at random (seeded).

With no `sim.correlation` nothing here runs: the random stream and every path are unchanged.
The random breakdown draws one uniform per step (only when `break_rate` > 0), after the
normals; its state is not saved with the exchange's state file (a restart starts unbroken).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from bot.core.beta import FloatArray
from bot.core.greeks import MS_PER_YEAR
from bot.cross_config import SimCorrelation, breakdown_matrix

DAY_MS = 86_400_000


def _factor(names: Sequence[str], listed: Sequence[str], matrix: FloatArray) -> FloatArray:
    """The Cholesky factor over `names` (the stepper's order); unlisted names are independent."""
    full = np.eye(len(names))
    at = [names.index(u) for u in listed]
    full[np.ix_(at, at)] = matrix
    return np.asarray(np.linalg.cholesky(full), dtype=np.float64)


class Correlator:
    def __init__(self, cfg: SimCorrelation, names: Sequence[str], start_ms: int) -> None:
        names = list(names)
        listed = [u for u in cfg.underlyings if u in names]
        idx = [cfg.underlyings.index(u) for u in listed]
        m = np.asarray(cfg.matrix, dtype=float)[np.ix_(idx, idx)]
        self._calm = _factor(names, listed, m)
        self._broken = _factor(names, listed, breakdown_matrix(len(listed), cfg.break_rho))
        self._break_ms = (
            start_ms + int(cfg.break_after_days * DAY_MS)
            if cfg.break_after_days is not None
            else None
        )
        self._rate = cfg.break_rate
        self._recover = cfg.recover_rate
        self.random_broken = False

    def broken(self, at_ms: int) -> bool:
        timed = self._break_ms is not None and at_ms > self._break_ms
        return timed or self.random_broken

    def mix(
        self, z: Sequence[float], from_ms: int, to_ms: int, rng: np.random.Generator
    ) -> list[float]:
        """The step's normals, correlated by the regime in force over (from_ms, to_ms]."""
        if self._rate > 0:
            dt = max(to_ms - from_ms, 0) / MS_PER_YEAR
            q = self._recover if self.random_broken else self._rate
            if float(rng.random()) < -math.expm1(-q * dt):
                self.random_broken = not self.random_broken
        factor = self._broken if self.broken(to_ms) else self._calm
        out: list[float] = (factor @ np.asarray(z, dtype=float)).tolist()
        return out


def correlator_for(
    cfg: SimCorrelation | None, names: Sequence[str], start_ms: int
) -> Correlator | None:
    if cfg is None or sum(u in names for u in cfg.underlyings) < 2:
        return None
    return Correlator(cfg, sorted(names), start_ms)
