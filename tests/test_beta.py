"""The beta estimator (bot/core/beta.py) against numbers computed independently with numpy's
least squares on the same seeded returns."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.core import beta as bt


def returns(n: int, seed: int = 3) -> np.ndarray:
    """Three series: a target driven by two proxies plus noise."""
    rng = np.random.default_rng(seed)
    p = rng.standard_normal((n, 2)) * [0.01, 0.02]
    t = 0.7 * p[:, 0] - 0.3 * p[:, 1] + 0.004 * rng.standard_normal(n) + 0.001
    return np.column_stack([t, p])


def feed(spec: bt.Spec, x: np.ndarray) -> bt.Moments:
    mo = bt.start(spec, x.shape[-1], x.shape[1:-1])
    for row in x:
        mo = bt.update(spec, mo, row)
    return mo


def ols(x: np.ndarray, w: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Target on proxies with an intercept, weighted by w; (slopes, residuals)."""
    design = np.column_stack([np.ones(len(x)), x[:, 1:]])
    sw = np.sqrt(w) if w is not None else np.ones(len(x))
    coef, *_ = np.linalg.lstsq(design * sw[:, None], x[:, 0] * sw, rcond=None)
    return coef[1:], x[:, 0] - design @ coef


def test_window_beta_corr_and_residual_match_least_squares_on_the_last_window() -> None:
    x = returns(700)
    spec = bt.Spec(window=250)
    fit = bt.regress(bt.covariance(spec, feed(spec, x)), 0, [1, 2], 250)
    last = x[-250:]
    slopes, resid = ols(last)
    assert np.allclose(fit.beta, slopes, rtol=1e-9, atol=1e-12)
    assert math.isclose(float(fit.resid_std), resid.std(ddof=1), rel_tol=1e-9)
    r2 = 1.0 - resid.var() / last[:, 0].var()
    assert math.isclose(float(fit.corr), math.sqrt(r2), rel_tol=1e-9)


def test_one_proxy_corr_is_the_absolute_pearson_correlation() -> None:
    x = returns(400)[:, [0, 2]]  # the target loads negatively on this proxy
    spec = bt.Spec(window=400)
    fit = bt.regress(bt.covariance(spec, feed(spec, x)), 0, [1], 400)
    rho = np.corrcoef(x[:, 0], x[:, 1])[0, 1]
    assert rho < 0
    assert math.isclose(float(fit.corr), abs(rho), rel_tol=1e-9)
    c = np.cov(x.T)
    assert math.isclose(float(fit.beta[0]), c[0, 1] / c[1, 1], rel_tol=1e-9)


def test_ewma_beta_is_the_exponentially_weighted_least_squares_slope() -> None:
    x = returns(500)
    spec = bt.Spec(half_life=60)
    fit = bt.regress(bt.covariance(spec, feed(spec, x)), 0, [1, 2], 500)
    lam = 0.5 ** (1 / 60)
    w = lam ** np.arange(len(x))[::-1]
    slopes, resid = ols(x, w)
    assert np.allclose(fit.beta, slopes, rtol=1e-9, atol=1e-12)
    resid_var = np.sum(w * (resid - np.sum(w * resid) / w.sum()) ** 2) / w.sum()
    assert math.isclose(float(fit.resid_std) ** 2, resid_var, rel_tol=1e-8)


def test_a_batch_of_paths_gives_what_each_path_gives_alone() -> None:
    paths = np.stack([returns(300, seed=s) for s in range(4)], axis=1)  # (steps, paths, m)
    for spec in (bt.Spec(window=120), bt.Spec(half_life=40)):
        batch = bt.regress(bt.covariance(spec, feed(spec, paths)), 0, [1, 2], 120)
        for i in range(4):
            one = bt.regress(bt.covariance(spec, feed(spec, paths[:, i])), 0, [1, 2], 120)
            assert np.allclose(batch.beta[i], one.beta, rtol=1e-9)
            assert math.isclose(float(batch.corr[i]), float(one.corr), rel_tol=1e-9)


def test_the_window_running_sums_stay_exact_over_many_windows() -> None:
    x = returns(5_003)
    spec = bt.Spec(window=100)
    cov = bt.covariance(spec, feed(spec, x))
    assert np.allclose(cov, np.cov(x[-100:].T), rtol=1e-9, atol=1e-15)


def test_a_flat_proxy_reads_as_no_correlation_not_a_division_by_zero() -> None:
    x = returns(50)
    x[:, 1] = 0.0
    spec = bt.Spec(window=50)
    fit = bt.regress(bt.covariance(spec, feed(spec, x)), 0, [1], 50)
    assert float(fit.beta[0]) == 0.0 and float(fit.corr) == 0.0
    assert math.isclose(float(fit.resid_std), x[:, 0].std(ddof=1), rel_tol=1e-9)


def test_before_two_returns_the_covariance_is_zero() -> None:
    spec = bt.Spec(window=10)
    mo = bt.update(spec, bt.start(spec, 2), np.array([0.01, 0.02]))
    assert not bt.covariance(spec, mo).any()


def test_spec_and_prices_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly one"):
        bt.Spec(window=10, half_life=5)
    with pytest.raises(ValueError, match="exactly one"):
        bt.Spec()
    with pytest.raises(ValueError, match="at least 2"):
        bt.Spec(window=1)
    assert bt.log_returns([100.0, 0.0], [101.0, 1.0]) is None
    assert bt.log_returns([100.0, 1.0], [math.nan, 1.0]) is None
    r = bt.log_returns([100.0, 2.0], [110.0, 1.0])
    assert r is not None and np.allclose(r, [math.log(1.1), math.log(0.5)])
