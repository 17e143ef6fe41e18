"""Minimum-variance hedge ratios (beta) of some underlyings on others, from their log returns.

Pure: numpy arrays and frozen dataclasses in and out, no clock (samples are taken by the shell,
bot/hedger/cross.py). Every array may carry leading batch axes (paths), so the backtest's
vectorized check (bot/backtest/cross_sim.py) runs this same code over many paths at once.

Moments of the joint log returns, either over the last `window` samples (equal weights) or
exponentially weighted with a half-life of `half_life` samples (weights halve every half_life
samples; sums normalized by the total weight). From the covariance C, for a target t hedged
with proxies p (ordinary least squares with an intercept, i.e. on centred returns):

    beta = C_pp^-1 C_pt                      (the minimum-variance ratio, cov/var for one proxy)
    residual variance = C_tt - C_tp beta     (the basis risk a perfect beta hedge leaves)
    corr = sqrt(1 - residual / C_tt)         (multiple correlation R; |rho| for one proxy)

A hedge of -beta_j x (USD delta of t) in USD of proxy j minimizes the variance of the pair's
P&L; the variance left is (1 - corr^2) of the unhedged one.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Spec:
    """How returns are weighted: exactly one of `window` (samples) or `half_life` (samples)."""

    window: int | None = None
    half_life: float | None = None

    def __post_init__(self) -> None:
        if (self.window is None) == (self.half_life is None):
            raise ValueError("give exactly one of window or half_life")
        if self.window is not None and self.window < 2:
            raise ValueError("window must be at least 2 samples")
        if self.half_life is not None and not self.half_life > 0:
            raise ValueError("half_life must be > 0 samples")


@dataclass(frozen=True, slots=True)
class Moments:
    """Running moments of m return series (axis -1), with optional leading batch axes.

    w, s1, s2 are the sums of 1, x and x x^T: decayed (EWMA), or over the last `window`
    returns, which `buf` holds (row `count % window` is the next to be replaced)."""

    count: int  # returns seen
    w: FloatArray  # (...,)
    s1: FloatArray  # (..., m)
    s2: FloatArray  # (..., m, m)
    buf: FloatArray | None  # (..., window, m) in window mode


def start(spec: Spec, m: int, batch: tuple[int, ...] = ()) -> Moments:
    buf = np.zeros((*batch, spec.window, m)) if spec.window is not None else None
    return Moments(0, np.zeros(batch), np.zeros((*batch, m)), np.zeros((*batch, m, m)), buf)


def update(spec: Spec, mo: Moments, x: FloatArray) -> Moments:
    """The moments with one more joint return `x` (shape (..., m))."""
    outer = x[..., :, None] * x[..., None, :]
    if spec.window is not None and mo.buf is not None:
        # Running sums over the window: add the new row, take out the one it replaces; the
        # sums are recomputed from the buffer once per window so rounding cannot accumulate.
        at = mo.count % spec.window
        buf = mo.buf.copy()
        old = buf[..., at, :].copy()
        buf[..., at, :] = x
        count = mo.count + 1
        if at == spec.window - 1:
            s1 = buf.sum(axis=-2)
            s2 = np.swapaxes(buf, -1, -2) @ buf
        else:
            s1 = mo.s1 + x - old
            s2 = mo.s2 + outer - old[..., :, None] * old[..., None, :]
        w = np.full(mo.w.shape, float(min(count, spec.window)))
        return Moments(count, w, s1, s2, buf)
    assert spec.half_life is not None
    lam = 0.5 ** (1.0 / spec.half_life)
    return Moments(mo.count + 1, lam * mo.w + 1.0, lam * mo.s1 + x, lam * mo.s2 + outer, None)


def covariance(spec: Spec, mo: Moments) -> FloatArray:
    """The covariance of the returns (..., m, m); zeros before two returns. A window's is the
    sample covariance (n - 1); the EWMA's is normalized by the total weight."""
    if mo.count < 2:
        return np.zeros(mo.s2.shape)
    w = mo.w[..., None]
    mean = mo.s1 / w
    cov = mo.s2 / w[..., None] - mean[..., :, None] * mean[..., None, :]
    if spec.window is not None:
        n = min(mo.count, spec.window)
        cov = cov * (n / (n - 1))
    return np.asarray(cov, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Fit:
    """One target regressed on its proxies (batch axes leading)."""

    beta: FloatArray  # (..., k): USD of proxy j per USD of target, minimum-variance
    corr: FloatArray  # (...,): multiple correlation R in [0, 1]
    resid_std: FloatArray  # (...,): std of the residual log return per sample interval
    samples: int  # returns the moments hold (window: at most the window)


def regress(cov: FloatArray, target: int, proxies: Sequence[int], samples: int) -> Fit:
    """Minimum-variance betas of column `target` on columns `proxies` of a covariance matrix.
    A proxy set with no variance gives beta 0 and corr 0 (pseudo-inverse), never a division by
    zero: a flat feed reads as no correlation."""
    p = list(proxies)
    c_pp = cov[..., p, :][..., :, p]
    c_pt = cov[..., p, target]
    c_tt = cov[..., target, target]
    beta = (np.linalg.pinv(c_pp) @ c_pt[..., None])[..., 0]
    explained = np.sum(c_pt * beta, axis=-1)
    resid = np.maximum(c_tt - explained, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        r2 = np.where(c_tt > 0, 1.0 - resid / np.where(c_tt > 0, c_tt, 1.0), 0.0)
    corr = np.sqrt(np.clip(r2, 0.0, 1.0))
    return Fit(beta, corr, np.sqrt(resid), samples)


def log_returns(before: Sequence[float], after: Sequence[float]) -> FloatArray | None:
    """ln(after / before) per name; None when any price is not a positive finite number."""
    if not all(_price_ok(v) for v in (*before, *after)):
        return None
    return np.log(np.asarray(after, dtype=np.float64) / np.asarray(before, dtype=np.float64))


def _price_ok(v: float) -> bool:
    return math.isfinite(v) and v > 0
