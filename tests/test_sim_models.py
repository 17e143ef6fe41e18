"""The sim's price models (gbm, jumps, heston, regime): path statistics, determinism, the options'
IV following the model's vol, and the config's rules for the parameters."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.config import ConfigError
from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.instruments import Kind
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.market import Stepper, UnderlyingParams, params_of, stepper_for
from bot.venues.sim.models import ModelStepper

MINUTE = 60_000
PER_YEAR = math.sqrt(365.25 * 24 * 60)


def _path(p: UnderlyingParams, n: int, seed: int = 3) -> tuple[np.ndarray, list[float], list[int]]:
    model = stepper_for({"BTC": p}, ["BTC"])
    rng = np.random.default_rng(seed)
    prices, var, regime = [60_000.0], [], []
    t = 0
    for _ in range(n):
        prices.append(model.advance([prices[-1]], t, t + MINUTE, rng)[0])
        t += MINUTE
        if isinstance(model, ModelStepper):
            var.append(model.variances[0])
            regime.append(model.regimes[0])
    return np.diff(np.log(prices)), var, regime


def _cfg(**kw: object) -> SimConfig:
    return SimConfig(underlyings={"BTC": SimUnderlying(price=60_000.0, **kw)})  # type: ignore[arg-type]


def test_gbm_vol_matches_the_configured_vol_and_has_no_jumps() -> None:
    p = params_of(_cfg(model="gbm", vol=0.6, jump_intensity=50.0, jump_std=0.1))["BTC"]
    assert p.jump_intensity == 0.0
    r, _, _ = _path(p, 100_000)
    assert np.std(r) * PER_YEAR == pytest.approx(0.6, rel=0.02)
    assert np.max(np.abs(r)) < 0.01  # no 10% jumps in a minute


def test_jumps_add_fat_tails_and_keep_the_mean_return() -> None:
    p = params_of(_cfg(model="jumps", vol=0.3, jump_intensity=500.0, jump_std=0.02))["BTC"]
    r, _, _ = _path(p, 100_000)
    want = math.sqrt(0.3**2 + 500.0 * 0.02**2)  # diffusion plus jump variance per year
    assert np.std(r) * PER_YEAR == pytest.approx(want, rel=0.05)
    kurt = np.mean((r - r.mean()) ** 4) / np.var(r) ** 2
    assert kurt > 5.0  # a normal's is 3


def test_heston_variance_mean_reverts_to_theta() -> None:
    cfg = _cfg(model="heston", vol=0.5, theta=0.25, v0=1.0, kappa=30.0, xi=0.3, rho=-0.7)
    p = params_of(cfg)["BTC"]
    r, var, _ = _path(p, 200_000)
    assert var[0] == pytest.approx(1.0, rel=0.05)  # starts at v0 ...
    tail = np.array(var[len(var) // 2 :])
    assert tail.mean() == pytest.approx(0.25, rel=0.15)  # ... and reverts to theta
    assert np.std(r[len(r) // 2 :]) * PER_YEAR == pytest.approx(0.5, rel=0.1)
    # rho < 0: returns and variance changes move against each other.
    dv = np.diff(np.array(var))
    assert np.corrcoef(r[1:], dv)[0, 1] < -0.5


def test_regime_switches_and_each_regime_has_its_vol() -> None:
    cfg = _cfg(model="regime", vol=0.3, vol2=1.5, switch_rate=200.0, switch_back_rate=400.0)
    r, _, regime = _path(params_of(cfg)["BTC"], 200_000)
    reg = np.array(regime)
    switches = int(np.sum(reg[1:] != reg[:-1]))
    years = 200_000 / (365.25 * 24 * 60)
    # Stationary share stressed 200 / 600; switches about 2 x 200 x share calm x years.
    assert reg.mean() == pytest.approx(1 / 3, abs=0.07)
    assert switches == pytest.approx(2 * 200 * (2 / 3) * years, rel=0.25)
    assert np.std(r[reg == 0]) * PER_YEAR == pytest.approx(0.3, rel=0.05)
    assert np.std(r[reg == 1]) * PER_YEAR == pytest.approx(1.5, rel=0.05)


@pytest.mark.parametrize("model", ["gbm", "jumps", "heston", "regime"])
def test_one_seed_gives_one_path(model: str) -> None:
    p = params_of(_cfg(model=model))["BTC"]
    a, _, _ = _path(p, 2_000, seed=9)
    b, _, _ = _path(p, 2_000, seed=9)
    c, _, _ = _path(p, 2_000, seed=10)
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_gbm_and_jumps_keep_the_original_stepper() -> None:
    params = params_of(_cfg(model="jumps"))
    assert type(stepper_for(params, ["BTC"])) is Stepper
    assert type(stepper_for(params_of(_cfg(model="heston")), ["BTC"])) is ModelStepper


def test_the_options_iv_follows_heston_vol_on_the_exchange() -> None:
    cfg = SimConfig(
        seed=4,
        underlyings={
            "BTC": SimUnderlying(price=60_000.0, model="heston", vol=0.6, xi=2.0, kappa=1.0)
        },
    )
    call = PositionConfig(
        underlying="BTC", kind="option", option_type="call", strike=60_000, expiry_days=30, qty=1
    )
    ex = SimExchange.create(cfg, [call], 1_767_225_600_000)
    option = next(s for s, i in ex.instruments.items() if i.kind is Kind.OPTION)
    ivs = set()
    t = ex.now_ms
    for _ in range(50):
        t += 3_600_000
        ex.tick(t)
        ticker = ex.ticker(option)
        assert ticker.iv is not None
        assert ticker.iv == pytest.approx(math.sqrt(max(ex._stepper.variances[0], 1e-4)), abs=1e-9)  # type: ignore[attr-defined]
        ivs.add(round(ticker.iv, 6))
    assert len(ivs) > 40  # it moves with the variance


@pytest.mark.parametrize(
    ("field", "value", "rule"),
    [("rho", 1.5, "less than or equal to 1"), ("model", "garch", "gbm"), ("kappa", 0, "greater")],
)
def test_bad_model_parameters_name_the_field(field: str, value: object, rule: str) -> None:
    with pytest.raises((ConfigError, ValueError)) as e:
        SimUnderlying(price=1.0, **{field: value})  # type: ignore[arg-type]
    assert field in str(e.value) and rule in str(e.value)
