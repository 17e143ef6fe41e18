"""The cross hedge's figures over 200 paths (issue: cross-asset, items 1 and 4): on a two-asset
market with no costs the beta hedge removes about rho^2 of the variance, and the estimated beta
is within 5% of the true one. The paths run vectorized (bot/backtest/cross_sim.py) through the
same estimator and hedge rule as the hedger; tests/test_cross_backtest.py runs the daemon's
own hedger on the same kind of market for a few paths."""

from __future__ import annotations

import pytest

from bot.backtest.cross_sim import PairMarket, simulate
from bot.core.beta import Spec

PATHS = 200
STEPS = 1_500  # one-minute samples: about a day per path


@pytest.mark.parametrize(
    ("rho", "tol", "spec"),
    [
        (0.8, 0.05, Spec(window=500)),
        (0.95, 0.03, Spec(window=500)),
        (0.8, 0.05, Spec(half_life=250)),
        (0.95, 0.03, Spec(half_life=250)),
    ],
)
def test_variance_reduction_is_rho_squared_and_beta_is_the_true_one(
    rho: float, tol: float, spec: Spec
) -> None:
    market = PairMarket(rho=rho, vol_target=0.9, vol_proxy=0.6)
    f = simulate(market, spec, min_samples=200, paths=PATHS, steps=STEPS, seed=11)
    assert abs(f.variance_reduction - rho * rho) <= tol, f
    assert abs(f.beta_mean / market.true_beta - 1.0) <= 0.05, f
    assert abs(f.corr_mean - rho) <= 0.02, f
    assert f.hedged_steps == STEPS - 200  # nothing is hedged before min_samples returns


def test_with_too_few_steps_nothing_is_hedged_and_it_says_so() -> None:
    market = PairMarket(rho=0.8, vol_target=0.9, vol_proxy=0.6)
    with pytest.raises(ValueError, match="never reach min_samples"):
        simulate(market, Spec(window=50), min_samples=50, paths=4, steps=50, seed=1)
