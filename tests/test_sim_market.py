"""The synthetic market: deterministic per seed, GBM moments, Merton jumps."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.core.greeks import MS_PER_YEAR
from bot.venues.sim.market import MarketState, UnderlyingParams, step

T0 = 1_767_225_600_000
YEAR = int(MS_PER_YEAR)


def path(seed: int, n: int = 200) -> list[dict[str, float]]:
    params = {"BTC": UnderlyingParams(vol=0.6, jump_intensity=4.0, jump_std=0.03)}
    params["ETH"] = UnderlyingParams(vol=0.8)
    state = MarketState(T0, {"BTC": 60_000.0, "ETH": 3_000.0})
    rng = np.random.default_rng(seed)
    out = []
    for i in range(1, n + 1):
        state = step(state, params, T0 + i * 1000, rng)
        out.append(dict(state.prices))
    return out


def test_same_seed_same_path() -> None:
    assert path(7) == path(7)


def test_different_seed_different_path() -> None:
    assert path(7) != path(8)


def test_no_time_no_move() -> None:
    state = MarketState(T0, {"BTC": 60_000.0})
    rng = np.random.default_rng(1)
    before = rng.bit_generator.state
    same = step(state, {"BTC": UnderlyingParams(vol=0.6)}, T0, rng)
    assert same.prices == state.prices and same.ts_ms == T0
    assert rng.bit_generator.state == before


def test_timestamp_is_the_target_time() -> None:
    state = step(
        MarketState(T0, {"BTC": 1.0}),
        {"BTC": UnderlyingParams(0.5)},
        T0 + 123,
        np.random.default_rng(1),
    )
    assert state.ts_ms == T0 + 123


def many(params: UnderlyingParams, n: int, dt_ms: int, seed: int = 3) -> np.ndarray:
    """Log returns of n independent paths over one step (one underlying each)."""
    names = [f"U{i}" for i in range(n)]
    state = MarketState(T0, dict.fromkeys(names, 100.0))
    out = step(state, dict.fromkeys(names, params), T0 + dt_ms, np.random.default_rng(seed))
    return np.log(np.array([out.prices[u] for u in names]) / 100.0)


def test_gbm_moments_one_year() -> None:
    p = UnderlyingParams(vol=0.5, drift=0.1)
    r = many(p, 40_000, YEAR)
    assert r.mean() == pytest.approx(0.1 - 0.5 * 0.25, abs=0.015)
    assert r.std() == pytest.approx(0.5, rel=0.03)
    # Drift is the expected simple return.
    assert np.exp(r).mean() == pytest.approx(math.exp(0.1), rel=0.02)


def test_jumps_add_variance_not_drift() -> None:
    p = UnderlyingParams(vol=0.2, jump_intensity=20.0, jump_mean=-0.02, jump_std=0.05)
    r = many(p, 40_000, YEAR)
    var = 0.2**2 + 20.0 * (0.02**2 + 0.05**2)
    assert r.var() == pytest.approx(var, rel=0.05)
    assert np.exp(r).mean() == pytest.approx(1.0, abs=0.01)


def test_jumps_fatten_short_horizon_tails() -> None:
    p = UnderlyingParams(vol=0.2, jump_intensity=20.0, jump_std=0.05)
    r = many(p, 40_000, 86_400_000)
    z = (r - r.mean()) / r.std()
    assert (z**4).mean() > 4.0  # a normal has 3
    plain = many(UnderlyingParams(vol=0.2), 40_000, 86_400_000)
    z = (plain - plain.mean()) / plain.std()
    assert (z**4).mean() == pytest.approx(3.0, abs=0.2)


def test_many_small_steps_match_one_large_one() -> None:
    """A path of 1-minute steps over 30 days has the right variance across seeds."""
    params = {"BTC": UnderlyingParams(vol=0.6)}
    finals = []
    for seed in range(300):
        rng = np.random.default_rng(seed)
        state = MarketState(T0, {"BTC": 60_000.0})
        for i in range(1, 31):
            state = step(state, params, T0 + i * 86_400_000, rng)
        finals.append(math.log(state.prices["BTC"] / 60_000.0))
    t = 30 * 86_400_000 / MS_PER_YEAR
    assert np.std(finals) == pytest.approx(0.6 * math.sqrt(t), rel=0.15)
