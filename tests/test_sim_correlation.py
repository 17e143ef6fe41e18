"""Correlated simulated markets (`[sim.correlation]`, bot/venues/sim/correlation.py): the
exchange's log returns have the configured correlation, it breaks down to `break_rho` at the
configured time or at random, and without the section the random stream is untouched."""

from __future__ import annotations

import numpy as np

from bot.config_sim import SimConfig, SimUnderlying
from bot.cross_config import SimCorrelation
from bot.venues.sim.exchange import SimExchange

T0 = 1_767_225_600_000
STEP = 60_000


def sim(model: str = "gbm", **corr: object) -> SimConfig:
    und = {
        "BTC": SimUnderlying(price=60_000.0, vol=0.6, model=model),  # type: ignore[arg-type]
        "ETH": SimUnderlying(price=3_000.0, vol=0.7, model=model),  # type: ignore[arg-type]
        "SOL": SimUnderlying(price=150.0, vol=0.9, model=model),  # type: ignore[arg-type]
    }
    c = SimCorrelation.model_validate(
        {"underlyings": ["BTC", "SOL"], "matrix": [[1, 0.8], [0.8, 1]], **corr}
    )
    return SimConfig(seed=5, underlyings=und, correlation=c)


def log_returns(cfg: SimConfig, steps: int) -> np.ndarray:
    ex = SimExchange.create(cfg, [], T0)
    names = sorted(cfg.underlyings)
    prices = [[ex.market.prices[u] for u in names]]
    for i in range(1, steps + 1):
        ex.tick(T0 + i * STEP)
        prices.append([ex.market.prices[u] for u in names])
    return np.diff(np.log(np.array(prices)), axis=0)  # columns BTC, ETH, SOL


def corr(r: np.ndarray, a: int, b: int) -> float:
    return float(np.corrcoef(r[:, a], r[:, b])[0, 1])


def test_the_configured_pair_moves_together_and_the_rest_independently() -> None:
    r = log_returns(sim(), 6_000)
    assert abs(corr(r, 0, 2) - 0.8) < 0.03
    assert abs(corr(r, 0, 1)) < 0.05 and abs(corr(r, 1, 2)) < 0.05
    # the vols stay what each underlying is configured with
    per_year = np.sqrt(365 * 1440)
    assert np.allclose(r.std(axis=0) * per_year, [0.6, 0.7, 0.9], rtol=0.05)


def test_heston_and_regime_models_are_correlated_too() -> None:
    r = log_returns(sim(model="regime"), 4_000)
    assert abs(corr(r, 0, 2) - 0.8) < 0.04


def test_the_correlation_breaks_down_at_the_configured_time() -> None:
    r = log_returns(sim(break_after_days=2.0, break_rho=0.0), 5_760)  # four days
    before, after = r[:2880], r[2880:]
    assert abs(corr(before, 0, 2) - 0.8) < 0.04
    assert abs(corr(after, 0, 2)) < 0.06


def test_random_breakdowns_switch_regimes_with_the_configured_intensity() -> None:
    # about one breakdown a day lasting about half a day: the correlation over the run sits
    # between the two regimes'
    r = log_returns(sim(break_rate=365.0, recover_rate=730.0, break_rho=0.0), 5_760)
    assert 0.2 < corr(r, 0, 2) < 0.75


def test_without_correlation_the_paths_are_the_independent_ones() -> None:
    plain = SimConfig(seed=5, underlyings=sim().underlyings)
    r = log_returns(plain, 500)
    other = log_returns(plain.model_copy(update={"correlation": None}), 500)
    assert np.array_equal(r, other)
    correlated = log_returns(sim(), 500)
    # BTC is first in the factor's order, so its normals (and path) are the same either way;
    # SOL's differ
    assert np.array_equal(r[:, 0], correlated[:, 0])
    assert not np.array_equal(r[:, 2], correlated[:, 2])
