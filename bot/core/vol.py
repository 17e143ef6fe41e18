"""Realized volatility of a price feed: an EWMA of squared log returns. Pure.

Each observation adds one log return r = ln(p / p_prev) over dt years; r^2 / dt is that
interval's annualized variance. The estimate is their exponentially weighted mean, where an
interval's weight decays with the time since it, by half every `half_life_s` seconds (so ticks
arriving at uneven rates weigh by time, not count). vol = sqrt(variance), a fraction per
sqrt(year), like implied vol. Until the first return it is nan (unknown, never a guess).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.greeks import MS_PER_YEAR


@dataclass(frozen=True, slots=True)
class EwmaVol:
    last_price: float = math.nan
    last_ts_ms: int = 0
    variance: float = math.nan  # per year
    returns: int = 0  # returns folded in so far

    @property
    def vol(self) -> float:
        return math.sqrt(self.variance) if self.variance >= 0 else math.nan


def ewma_update(state: EwmaVol, price: float, ts_ms: int, half_life_s: float) -> EwmaVol:
    """`state` with one more observation. A price that is not finite and > 0 is ignored, and so
    is one not later than the last (a repeated or out-of-order tick carries no new return)."""
    if half_life_s <= 0:
        raise ValueError(f"half_life_s must be > 0, got {half_life_s}")
    if not (math.isfinite(price) and price > 0):
        return state
    if state.returns == 0 and math.isnan(state.last_price):
        return EwmaVol(last_price=price, last_ts_ms=ts_ms)
    if ts_ms <= state.last_ts_ms:
        return state
    dt_ms = ts_ms - state.last_ts_ms
    sample = math.log(price / state.last_price) ** 2 / (dt_ms / MS_PER_YEAR)
    if state.returns == 0:
        variance = sample
    else:
        keep = 0.5 ** (dt_ms / 1000.0 / half_life_s)  # weight left on the older estimate
        variance = keep * state.variance + (1.0 - keep) * sample
    return EwmaVol(last_price=price, last_ts_ms=ts_ms, variance=variance, returns=state.returns + 1)


def ewma_fold(
    state: EwmaVol, prices: Sequence[float], times: Sequence[int], half_life_s: float
) -> EwmaVol:
    """`ewma_update` over each (price, ts) in turn, the same floats in the same order; the
    common case (finite, positive, later prices after a first return) without building a state
    per observation (a backtest's quiet span)."""
    if half_life_s <= 0:
        raise ValueError(f"half_life_s must be > 0, got {half_life_s}")
    last, ts, var, n = state.last_price, state.last_ts_ms, state.variance, state.returns
    keep_dt, keep = -1, 0.0
    for price, t in zip(prices, times, strict=True):
        if n == 0 or not (math.isfinite(price) and price > 0) or t <= ts:
            s = ewma_update(EwmaVol(last, ts, var, n), price, t, half_life_s)
            last, ts, var, n = s.last_price, s.last_ts_ms, s.variance, s.returns
            continue
        dt_ms = t - ts
        if dt_ms != keep_dt:  # equal steps: the same weight, computed once
            keep_dt, keep = dt_ms, 0.5 ** (dt_ms / 1000.0 / half_life_s)
        sample = math.log(price / last) ** 2 / (dt_ms / MS_PER_YEAR)
        var = keep * var + (1.0 - keep) * sample
        last, ts, n = price, t, n + 1
    return EwmaVol(last_price=last, last_ts_ms=ts, variance=var, returns=n)
