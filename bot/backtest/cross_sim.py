"""The cross hedge's figures over many paths at once: a vectorized two-asset market (correlated
GBM, no costs) run through the same estimator (bot/core/beta.py, a batch axis per path) and the
same hedge rule as the hedger (hold -beta x D of the proxy, beta from the returns before the
step, nothing before `min_samples` returns).

The real backtest (bot/backtest/path.py) runs the whole daemon and takes seconds per simulated
day; this takes seconds for hundreds of paths, so the variance-reduction figure can be checked
against rho^2 over 200 paths (tests/test_cross_figures.py, bench/bench_cross.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bot.core import beta as bt

YEAR_S = 365.0 * 86_400.0


@dataclass(frozen=True, slots=True)
class PairMarket:
    rho: float  # correlation of the log returns
    vol_target: float  # annual vols
    vol_proxy: float
    sample_s: float = 60.0  # one step, one sample

    @property
    def true_beta(self) -> float:
        """cov/var of the log returns: the minimum-variance ratio."""
        return self.rho * self.vol_target / self.vol_proxy


@dataclass(frozen=True, slots=True)
class Figures:
    variance_reduction: float  # 1 - var(hedged) / var(unhedged), pooled over paths and steps
    beta_mean: float  # the last estimate, mean over paths
    beta_std: float  # and its spread over paths
    corr_mean: float
    hedged_steps: int


def simulate(
    market: PairMarket, spec: bt.Spec, min_samples: int, paths: int, steps: int, seed: int
) -> Figures:
    """Per step and path: unhedged P&L r_t (per USD of delta) and hedged r_t - beta r_p, with
    beta estimated from the returns before the step (no look-ahead)."""
    rng = np.random.default_rng(seed)
    dt = market.sample_s / YEAR_S
    chol = np.linalg.cholesky(np.array([[1.0, market.rho], [market.rho, 1.0]]))
    vols = np.array([market.vol_target, market.vol_proxy])
    z = rng.standard_normal((steps, paths, 2)) @ chol.T
    log_ret = -0.5 * vols**2 * dt + vols * math.sqrt(dt) * z
    simple = np.expm1(log_ret)
    mo = bt.start(spec, 2, (paths,))
    unhedged: list[bt.FloatArray] = []
    hedged: list[bt.FloatArray] = []
    fit: bt.Fit | None = None
    for t in range(steps):
        samples = min(mo.count, spec.window) if spec.window is not None else mo.count
        if samples >= min_samples:
            fit = bt.regress(bt.covariance(spec, mo), 0, [1], samples)
            unhedged.append(simple[t, :, 0])
            hedged.append(simple[t, :, 0] - fit.beta[:, 0] * simple[t, :, 1])
        mo = bt.update(spec, mo, log_ret[t])
    if fit is None:
        raise ValueError(f"steps = {steps} never reach min_samples = {min_samples}")
    u, h = np.concatenate(unhedged), np.concatenate(hedged)
    return Figures(
        variance_reduction=float(1.0 - h.var() / u.var()),
        beta_mean=float(fit.beta[:, 0].mean()),
        beta_std=float(fit.beta[:, 0].std()),
        corr_mean=float(fit.corr.mean()),
        hedged_steps=len(unhedged),
    )
