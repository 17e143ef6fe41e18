"""The trigger corridor: the range of the underlying's index inside which the policy cannot fire.

Pure. After a decision that does not trade (delta inside the band), the delta can only leave the
band by the index moving or time passing. corridor_bounds.py bounds how fast it moves over a
price range (at most 10% from the index, never across an expired option's strike) and a window
(at most `refresh_ms`, half the nearest expiry): gamma in price, charm in time. Two corridors
come from them, and the one that should hold longer (corridor_grid.score) is kept:
- the bound alone: the delta moves by at most G |S - S0| + C h, so a quarter of the margin to
  the nearer band edge goes to time (that sets the window), the rest to price, shrunk by SAFETY
  for rounding (in "usd" the band is on delta x S, whose slope is bounded by G S_hi + |delta|);
- the grid (corridor_grid.py): the book's exact delta at the nodes of a price x time grid, with
  the bounds covering only half a cell around each node; the rectangle of cells whose delta
  stays inside the band.
A cost-sized band (Whalley-Wilmott, corridor_grid.CostWidth) holds over each grid cell at a lower
bound of its half-width; the bound alone uses its floor.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.core.book import Columns, FloatArray
from bot.core.greeks import MS_PER_YEAR
from bot.core.policy import Band
from bot.hedger.corridor_bounds import Reach, Slopes, reach, slopes
from bot.hedger.corridor_grid import CostWidth, grid_corridor, reach_of_band, score

SAFETY = 0.9
TIME_SHARE = 0.25


@dataclass(frozen=True, slots=True)
class Corridor:
    """Index range [lo, hi] in which the policy cannot fire until `until_ms`."""

    lo: float
    hi: float
    until_ms: int

    def as_dict(self) -> dict[str, float | int]:
        return {"lo": self.lo, "hi": self.hi, "until_ms": self.until_ms}


def margin(delta_coin: float, price: float, band: Band) -> float:
    """How far (in the band's unit) the delta may move before leaving the band."""
    d = delta_coin if band.unit == "coin" else delta_coin * price
    return min(band.center + band.upper - d, d - (band.center - band.lower))


def corridor(
    cols: Columns,
    qty: FloatArray,
    iv: FloatArray,
    s0: float,
    rate: float,
    now_ms: int,
    delta_coin: float,
    band: Band,
    refresh_ms: int,
    coin_equity: bool = False,
    width: CostWidth | None = None,
    gamma_coin: float | None = None,
) -> Corridor | None:
    """The corridor around `s0` for a book `qty` (held + in flight, aligned with cols.keys) whose
    delta `delta_coin` is inside `band`; None when there is none worth having. `coin_equity`:
    the delta also counts the coin value of the coin-settled lines (the "usd" view with balances
    read, bot/hedger/equity.py). `width`: the band's half-width is sized by gamma (`band` is
    the decision's). `gamma_coin`: the book's gamma at (s0, now), if known (it sizes the
    grid)."""
    if not (math.isfinite(s0) and s0 > 0.0 and band.problem() is None):
        return None
    d = delta_coin if band.unit == "coin" else delta_coin * s0
    if not (math.isfinite(d) and band.contains(d)):
        return None
    r = reach(cols, qty, iv, s0, now_ms, refresh_ms)
    if r is None:
        return None
    # The grid's reach: the bounds then hold over no more than the corridor can use.
    r = reach_of_band(cols, qty, iv, s0, now_ms, rate, delta_coin, band, r, gamma_coin)
    sl = slopes(cols, qty, iv, r, rate, now_ms, coin_equity)
    vol = _vol(cols, qty, iv)
    sure = band if width is None else Band(band.center, width.floor, width.floor, band.unit)
    found = [
        c
        for c in (
            _bounded(r, sl, s0, now_ms, delta_coin, margin(delta_coin, s0, sure), band.unit),
            grid_corridor(cols, qty, iv, s0, rate, now_ms, delta_coin, band, r, sl, width, vol),
        )
        if c is not None and c[0] < s0 < c[1] and c[2] > now_ms
    ]
    if not found:
        return None
    lo, hi, until = max(found, key=lambda c: score(c, s0, now_ms, vol))
    return Corridor(lo=lo, hi=hi, until_ms=until)


def _bounded(
    r: Reach, sl: Slopes, s0: float, now_ms: int, delta_coin: float, m: float, unit: str
) -> tuple[float, float, int] | None:
    """The corridor from the bounds alone (module docstring), margin `m` in the band's unit."""
    if not (math.isfinite(m) and m > 0.0):
        return None
    usd = unit == "usd"
    gamma, charm = sl.gamma + sl.gamma_eq, sl.charm + sl.charm_eq
    h_years = r.h_ms / MS_PER_YEAR
    scale = r.s_hi if usd else 1.0
    if charm > 0.0:
        h_years = min(h_years, TIME_SHARE * m / (charm * scale))
    m_price = m - charm * h_years * scale
    # |delta| over the range and window, for the slope of delta x S in "usd"
    d_max = abs(delta_coin) + gamma * (r.s_hi - r.s_lo) + charm * h_years
    slope = gamma * scale + (d_max if usd else 0.0)
    w = SAFETY * m_price / slope if slope > 0.0 else math.inf
    return max(r.s_lo, s0 - w), min(r.s_hi, s0 + w), now_ms + int(h_years * MS_PER_YEAR)


def _vol(cols: Columns, qty: FloatArray, iv: FloatArray) -> float:
    """The options' mean IV (0.5 with none): how fast the index is expected to wander."""
    sig = [v for v in iv[cols.opt[qty[cols.opt] != 0.0]].tolist() if v > 0.0]  # nan is not
    return sum(sig) / len(sig) if sig else 0.5
