"""The risk a hedge leaves: a scenario grid and historical-simulation VaR by full revaluation.

Pure: positions, prices, IVs and time come in as arguments. Every scenario revalues the whole
book of one underlying at a shocked index (and, for options, a shocked implied vol) and reports
the change of its USD value; no greeks are extrapolated.

Values in USD at index S (units as bot/core/book.py documents):
- spot and linear perps/futures: qty x size x S;
- inverse perps/futures (size in USD): coin value qty x size x (1/S0 - 1/S), i.e. the P&L since
  S0, times S for USD;
- linear options: qty x size x BS(S); coin-settled options: qty x size x BS(S)/S coin, times S;
- coin held outside the lines (the coin equity in the "usd" view, external deltas): coin x S.
Futures are shocked with the index (the basis is held constant); shocks are instantaneous (no
time passes: theta is not in the scenarios) and an IV shock moves every option's IV by the
same number of points, floored at MIN_IV.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from bot.core.book import Columns
from bot.core.greeks import black_scholes, year_fractions

FloatArray = npt.NDArray[np.float64]
MIN_IV = 0.01  # an IV shock never takes a vol below 1%
DAY_S = 86_400.0
VAR_LEVEL = 0.99


class MissingIV(ValueError):
    """An option held has no implied vol: the book cannot be revalued (no number is made up)."""


@dataclass(frozen=True, slots=True)
class BookInputs:
    """One underlying's book: columns, quantities (held + in flight, as the exposure counts
    them), IVs per column (nan where none), index, rate, time and coin held outside the lines."""

    cols: Columns
    qty: FloatArray
    iv: FloatArray
    spot: float
    rate: float
    now_ms: int
    extra_coin: float = 0.0

    @property
    def empty(self) -> bool:
        return not bool(np.any(self.qty != 0.0)) and self.extra_coin == 0.0


def inverse_pnl_coin(qty: float, size_usd: float, s0: float, s: float) -> float:
    """P&L in coin of qty inverse contracts of size_usd from index s0 to s."""
    return qty * size_usd * (1.0 / s0 - 1.0 / s)


def values_usd(
    b: BookInputs, spots: FloatArray, iv_points: Sequence[float] | float = 0.0
) -> FloatArray:
    """USD value of the book (the inverse lines' counted from b.spot) at each spot, for each IV
    shift in points: shape (len(iv_points), len(spots)), or (len(spots),) for one scalar shift.
    All cells are priced in one vectorized Black-Scholes call."""
    c = b.cols
    s = np.asarray(spots, dtype=np.float64)
    pts = np.atleast_1d(np.asarray(iv_points, dtype=np.float64))
    one = ~c.is_option
    linear = float(b.qty @ np.where(one & ~c.is_inverse, c.contract_size, 0.0))
    inverse = float(b.qty @ np.where(one & c.is_inverse, c.contract_size, 0.0))
    flat = (linear + b.extra_coin) * s + inverse * (1.0 / b.spot - 1.0 / s) * s
    value = np.broadcast_to(flat, (pts.size, s.size)).copy()
    live = c.opt[b.qty[c.opt] != 0.0]
    if live.size:
        sigma = b.iv[live]
        if np.isnan(sigma).any():
            missing = [c.keys[i][1] for i in live[np.isnan(sigma)].tolist()]
            raise MissingIV(f"no implied vol for held options {missing}")
        shocked = np.maximum(sigma[None, :] + pts[:, None] / 100.0, MIN_IV)  # (ivs, options)
        t = year_fractions(c.expiry_ms[live], b.now_ms)
        g = black_scholes(
            s[None, :, None],
            c.strike[live],
            t,
            b.rate,
            shocked[:, None, :],
            c.is_call[live],
        )  # USD price per coin, shape (ivs, spots, options)
        usd = np.asarray(g.price, dtype=np.float64)
        # Coin-settled: the premium is usd/S coin, worth usd/S x S in USD: the same USD value.
        s3 = s[None, :, None]
        usd = np.where(c.is_inverse[live][None, None, :], usd / s3 * s3, usd)
        value += usd @ (b.qty[live] * c.contract_size[live])
    out = np.asarray(value, dtype=np.float64)
    return out[0] if np.ndim(iv_points) == 0 else out


def base_usd(b: BookInputs) -> float:
    """The book's USD value at (b.spot, IVs): what `pnl_usd` counts from."""
    return float(values_usd(b, np.array([b.spot]))[0])


def pnl_usd(
    b: BookInputs,
    spots: FloatArray,
    iv_points: Sequence[float] | float = 0.0,
    base: float | None = None,
) -> FloatArray:
    """Change of the book's USD value from (b.spot, IVs) to each of `spots` at IV + points
    (shaped as values_usd); `base`: base_usd(b), when the caller has it already."""
    if base is None:
        base = base_usd(b)
    return np.asarray(values_usd(b, spots, iv_points) - base, dtype=np.float64)


@dataclass(frozen=True, slots=True)
class Grid:
    spot_pct: tuple[float, ...]
    iv_points: tuple[float, ...]
    pnl_usd: tuple[tuple[float, ...], ...]  # [iv row][spot column]

    def worst(self) -> dict[str, float]:
        cells = [
            (p, s, v)
            for p, row in zip(self.iv_points, self.pnl_usd, strict=True)
            for s, v in zip(self.spot_pct, row, strict=True)
        ]
        p, s, v = min(cells, key=lambda x: x[2])
        return {"spot_pct": s, "iv_points": p, "pnl_usd": v}

    def plus(self, other: Grid) -> Grid:
        rows = tuple(
            tuple(a + b for a, b in zip(r1, r2, strict=True))
            for r1, r2 in zip(self.pnl_usd, other.pnl_usd, strict=True)
        )
        return Grid(self.spot_pct, self.iv_points, rows)

    def as_dict(self) -> dict[str, object]:
        return {
            "spot_pct": list(self.spot_pct),
            "iv_points": list(self.iv_points),
            "pnl_usd": [list(r) for r in self.pnl_usd],
            "worst": self.worst(),
        }


def scenario_grid(
    b: BookInputs,
    spot_pct: Sequence[float],
    iv_points: Sequence[float],
    base: float | None = None,
) -> Grid:
    """P&L in USD of every (IV shock, spot shock) cell (`base` as for pnl_usd)."""
    spots = b.spot * (1.0 + np.asarray(spot_pct, dtype=np.float64) / 100.0)
    cells = pnl_usd(b, spots, list(iv_points), base).tolist()
    return Grid(tuple(spot_pct), tuple(iv_points), tuple(tuple(r) for r in cells))


def zero_grid(spot_pct: Sequence[float], iv_points: Sequence[float]) -> Grid:
    return Grid(
        tuple(spot_pct), tuple(iv_points), tuple(tuple(0.0 for _ in spot_pct) for _ in iv_points)
    )


def daily_return(p0: float, p1: float, dt_s: float) -> float:
    """Log return from p0 to p1 over dt_s seconds, scaled to one day by sqrt(DAY_S / dt_s)
    (square-root-of-time: exact for independent returns)."""
    return math.log(p1 / p0) * math.sqrt(DAY_S / dt_s)


def historical_pnl(
    b: BookInputs, returns: Sequence[float], base: float | None = None
) -> FloatArray:
    """P&L of the book if the index moved by each 1-day log return (IVs unchanged; `base` as
    for pnl_usd)."""
    spots = b.spot * np.exp(np.asarray(returns, dtype=np.float64))
    return pnl_usd(b, spots, base=base)


def var_cvar(pnl: Sequence[float] | FloatArray, level: float = VAR_LEVEL) -> tuple[float, float]:
    """(VaR, CVaR) as positive losses from a P&L sample of N scenarios. With k = N -
    ceil(level x N) + 1, VaR is the k-th worst loss (the empirical `level` quantile of the
    losses) and CVaR the mean of the k worst losses (the tail at and beyond VaR)."""
    losses = np.sort(-np.asarray(pnl, dtype=np.float64))[::-1]  # worst first
    n = losses.size
    if n == 0:
        raise ValueError("no scenarios")
    k = n - math.ceil(level * n - 1e-9) + 1
    # + 0.0: a flat book reports 0.0, not -0.0
    return float(losses[k - 1]) + 0.0, float(losses[:k].mean()) + 0.0
