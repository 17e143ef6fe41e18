"""The trigger corridor on a grid: the book's exact delta at the nodes of a price x time grid, and
bounds (corridor_bounds.py) for what happens between them.

Pure. The grid reaches REACH times as far as the delta would go to leave the band at the slope
it has at the decision, within the range (N_PRICE cells a side of the index, N_TIME cells over
the window). For each cell the delta lies within [min corner - slack,
max corner + slack]: any point of a cell is within half a cell of a corner, so slack =
gamma dS/2 + charm dt/2 (in "usd", delta x S: (gamma S_hi + |delta|) dS/2 + charm S_hi dt/2).
The coin value of coin-settled lines (`coin_equity`) is not on the grid: it moves from its value
at the decision by at most gamma_eq |S - s0| + charm_eq (t - now). A cell is inside when that
interval is inside the band; the corridor is the rectangle around (s0, now) of inside cells that
keeps the policy quiet longest (the harmonic mean of its time and a random walk's expected exit
time from its price range, at the options' IV).

A cost-sized band (Whalley-Wilmott, `CostWidth`) is held to a lower bound of its half-width over
each cell: H = (k disc S Gamma^2)^(1/3), clamped to [floor, cap], with k = 1.5 lambda /
risk_aversion where lambda is the hedge's fee alone (a book update can narrow the spread, never
the fee), disc = exp(-r tau) at the book's longest expiry, S the cell's lowest price and |Gamma|
the corners' smallest less speed dS/2 + color dt/2 (0 where the corners' signs differ).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
from scipy.special import ndtr

from bot.core.book import Columns, FloatArray
from bot.core.greeks import MS_PER_YEAR
from bot.core.policy import Band
from bot.hedger.corridor_bounds import Reach, Slopes

N_PRICE = 10  # cells each side of the index
N_TIME = 4
REACH = 1.2  # the grid's reach over the linear estimate of where the band ends
# Band edges are pulled in by this much of the band (and of the values) for rounding: the grid's
# kernel and the decision's sum the same terms in another order.
ROUNDING = 1e-9
IntArray = npt.NDArray[np.int64]
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


@dataclass(frozen=True, slots=True)
class CostWidth:
    """A half-width sized by gamma (see the module docstring); floor and cap in the band's
    unit."""

    k: float
    floor: float
    cap: float


def book_delta_gamma(
    cols: Columns,
    qty: FloatArray,
    iv: FloatArray,
    s: FloatArray,
    t_ms: IntArray,
    rate: float,
    with_gamma: bool = True,
) -> tuple[FloatArray, FloatArray | None]:
    """The book's coin delta (and gamma) at each (t_ms[j], s[i]), (len(t_ms), len(s)) arrays,
    less the lines whose delta is constant there (linear delta-one lines, expired linear
    options): bot/core/greeks.py's Black-Scholes terms, premium-adjusted for coin-settled
    options, for times before every live option's expiry and a range that crosses no expired
    strike."""
    idx = cols.opt[qty[cols.opt] != 0.0]
    # Inverse delta-one lines (qF/S), and expired coin-settled options: +-K/S in the money.
    expired = cols.expiry_ms[idx] <= t_ms[0]
    dead = idx[expired & cols.is_inverse[idx]]
    k = cols.strike[dead]
    call = cols.is_call[dead]
    itm = np.where(call, s[:, None] > k, s[:, None] < k)
    qk = np.where(itm, qty[dead] * cols.contract_size[dead] * k * np.where(call, 1.0, -1.0), 0.0)
    one = float(qty @ cols.inverse_usd) + qk.sum(axis=1)
    delta = np.broadcast_to(one / s, (len(t_ms), len(s)))
    gamma = np.broadcast_to(-one / (s * s), (len(t_ms), len(s))) if with_gamma else None
    idx = idx[~expired]
    if not idx.size:
        return delta, gamma
    q = qty[idx] * cols.contract_size[idx]
    k, sigma, put = cols.strike[idx], iv[idx], ~cols.is_call[idx]
    tau = ((cols.expiry_ms[idx] - t_ms[:, None]) / MS_PER_YEAR)[:, None, :]
    sd = sigma * np.sqrt(tau)
    d1 = ((np.log(s)[:, None] - np.log(k)) + (rate + 0.5 * sigma * sigma) * tau) / sd
    n1 = ndtr(d1)
    d = n1 - put
    ss = s[:, None]
    gm = np.exp(-0.5 * d1 * d1) * (_INV_SQRT_2PI / ss) / sd if with_gamma else None
    inv = cols.is_inverse[idx]
    if inv.any():
        kdf = (k * np.exp(-rate * tau))[..., inv]
        call_price = ss * n1[..., inv] - kdf * ndtr(d1[..., inv] - sd[..., inv])
        price = np.maximum(call_price + put[inv] * (kdf - ss), 0.0) / ss
        di = d[..., inv]
        if gm is not None:
            gm[..., inv] += (price - di) / ss
        d[..., inv] = di - price
    return delta + d @ q, (gamma + gm @ q if gamma is not None and gm is not None else None)


def reach_of_band(
    cols: Columns,
    qty: FloatArray,
    iv: FloatArray,
    s0: float,
    now_ms: int,
    rate: float,
    delta_coin: float,
    band: Band,
    r: Reach,
    gamma0: float | None,
) -> Reach:
    """`r` narrowed to where the grid goes: REACH x as far as the delta would go to leave the
    band at the slope it has at (s0, now) (`gamma0`, the book's gamma there, if known)."""
    if gamma0 is None:
        at = book_delta_gamma(cols, qty, iv, np.array([s0]), np.array([now_ms]), rate)[1]
        gamma0 = float(at[0, 0]) if at is not None else 0.0
    slope = gamma0
    v0 = delta_coin
    if band.unit == "usd":
        slope, v0 = slope * s0 + delta_coin, delta_coin * s0
    room_up = band.center + band.upper - v0 if slope > 0 else v0 - (band.center - band.lower)
    room_down = band.center + band.upper - v0 if slope < 0 else v0 - (band.center - band.lower)
    size = abs(slope) / REACH
    up = room_up / size if size > 0 else math.inf
    down = room_down / size if size > 0 else math.inf
    return Reach(max(r.s_lo, s0 - down), min(r.s_hi, s0 + up), r.h_ms)


def _half_widths(
    w: CostWidth,
    gamma: FloatArray,
    s: FloatArray,
    dt: FloatArray,
    sl: Slopes,
    disc: float,
    usd: bool,
) -> FloatArray:
    """A lower bound of the cost-sized half-width over each cell (module docstring)."""
    corners = np.stack((gamma[:-1, :-1], gamma[:-1, 1:], gamma[1:, :-1], gamma[1:, 1:]))
    same = (corners.min(axis=0) > 0.0) | (corners.max(axis=0) < 0.0)
    near = np.abs(corners).min(axis=0)
    ds = np.diff(s)[None, :]
    g_lo = np.where(same, np.maximum(near - sl.speed * ds / 2 - sl.color * dt / 2, 0.0), 0.0)
    s_lo = s[:-1][None, :]
    h = np.cbrt(w.k * disc * s_lo * g_lo * g_lo)
    return np.asarray(np.clip(h * s_lo if usd else h, w.floor, w.cap), dtype=np.float64)


def grid_corridor(
    cols: Columns,
    qty: FloatArray,
    iv: FloatArray,
    s0: float,
    rate: float,
    now_ms: int,
    delta_coin: float,
    band: Band,
    r: Reach,
    sl: Slopes,
    width: CostWidth | None,
    vol: float,
) -> tuple[float, float, int] | None:
    """(lo, hi, until_ms) on the grid (module docstring) over `r` (see `reach_of_band`), or
    None when no cell next to the index is inside; `vol` scores the candidates (see `score`)."""
    usd = band.unit == "usd"
    lo, hi = r.s_lo, r.s_hi
    s = np.concatenate((np.linspace(lo, s0, N_PRICE + 1), np.linspace(s0, hi, N_PRICE + 1)[1:]))
    t = now_ms + (np.arange(N_TIME + 1) * (r.h_ms / N_TIME)).astype(np.int64)
    d, gamma = book_delta_gamma(cols, qty, iv, s, t, rate, width is not None)
    d = d + (delta_coin - d[0, N_PRICE])
    dt = (np.diff(t) / MS_PER_YEAR)[:, None]
    ds = np.diff(s)[None, :]
    s_hi = s[1:][None, :]
    corners = np.stack((d[:-1, :-1], d[:-1, 1:], d[1:, :-1], d[1:, 1:]))
    far = np.maximum(np.abs(s[:-1] - s0), np.abs(s[1:] - s0))[None, :]
    eq = sl.gamma_eq * far + sl.charm_eq * ((t[1:] - now_ms) / MS_PER_YEAR)[:, None]
    # Linear interpolation in price is off by at most |d2 delta/dS2| dS^2/8; time as above.
    if usd:
        slack = (sl.speed * s_hi + 2.0 * sl.gamma) * ds * ds / 8 + sl.charm * s_hi * dt / 2
        eq = eq * s_hi
        corners = corners * np.stack((s[:-1], s[1:], s[:-1], s[1:]))[:, None, :]
    else:
        slack = sl.speed * ds * ds / 8 + sl.charm * dt / 2
    v_lo = corners.min(axis=0) - slack - eq
    v_hi = corners.max(axis=0) + slack + eq
    lower = np.full(v_lo.shape, band.lower)
    upper = np.full(v_lo.shape, band.upper)
    if width is not None and gamma is not None:
        tau = (cols.expiry_ms[cols.opt[qty[cols.opt] != 0.0]] - now_ms) / MS_PER_YEAR
        disc = min(1.0, math.exp(-rate * max(float(tau.max(initial=0.0)), 0.0)))
        lower = upper = _half_widths(width, gamma, s, dt, sl, disc, usd)
    tol = ROUNDING * (band.lower + band.upper + abs(band.center) + np.abs(corners).max())
    ok = (v_hi <= band.center + upper - tol) & (v_lo >= band.center - lower + tol)
    return _rectangle(ok, s, t, s0, now_ms, vol)


def _rectangle(
    ok: npt.NDArray[np.bool_], s: FloatArray, t: IntArray, s0: float, now_ms: int, vol: float
) -> tuple[float, float, int] | None:
    """The best rectangle of inside cells around (s0, now) (module docstring)."""
    rows = np.logical_and.accumulate(ok, axis=0)  # row j: inside over every time up to it
    up = np.cumprod(rows[:, N_PRICE:], axis=1).sum(axis=1)
    down = np.cumprod(rows[:, :N_PRICE][:, ::-1], axis=1).sum(axis=1)
    best: tuple[float, float, int] | None = None
    best_score = 0.0
    for j in np.flatnonzero((up > 0) & (down > 0)).tolist():
        c = (float(s[N_PRICE - down[j]]), float(s[N_PRICE + up[j]]), int(t[j + 1]))
        sc = score(c, s0, now_ms, vol)
        if sc > best_score:
            best, best_score = c, sc
    return best


def score(c: tuple[float, float, int], s0: float, now_ms: int, vol: float) -> float:
    """How long a corridor should hold, in years: the harmonic mean of its time and a random
    walk's expected exit time from its price range."""
    lo, hi, until = c
    exit_years = (s0 - lo) * (hi - s0) / (vol * vol * s0 * s0)
    years = (until - now_ms) / MS_PER_YEAR
    return 0.0 if years <= 0.0 or exit_years <= 0.0 else 1.0 / (1.0 / years + 1.0 / exit_years)
