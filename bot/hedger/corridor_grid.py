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
N_TIME = 3
REACH = 1.2  # the grid's reach over the linear estimate of where the band ends
# Band edges are pulled in by this much of the band (and of the values) for rounding: the grid's
# kernel and the decision's sum the same terms in another order.
ROUNDING = 1e-9
IntArray = npt.NDArray[np.int64]
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)
_STEPS = np.arange(-N_PRICE, N_PRICE + 1) / N_PRICE  # grid prices: s0 + step x reach
_TIMES = np.arange(N_TIME + 1)


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
    options): bot/core/book_kernels.py's sums (Black-Scholes, premium-adjusted for coin-settled
    options), for times before every live option's expiry and a range that crosses no expired
    strike."""
    idx = cols.opt[qty[cols.opt] != 0.0]
    # Inverse delta-one lines (qF/S) and expired coin-settled options (+-K/S in the money): a
    # coin delta c/S, whose gamma is -c/S^2.
    one = float(qty @ cols.inverse_usd) / s
    expired = cols.expiry_ms[idx] <= t_ms[0]
    if expired.any():
        dead = idx[expired & cols.is_inverse[idx]]
        k, call = cols.strike[dead], cols.is_call[dead]
        itm = np.where(call, s[:, None] > k, s[:, None] < k)
        qk = qty[dead] * cols.contract_size[dead] * np.where(call, k, -k)
        one = one + (itm @ qk) / s
        idx = idx[~expired]
    delta = np.repeat(one[None, :], len(t_ms), axis=0)
    gamma = -delta / s if with_gamma else None
    if not idx.size:
        return delta, gamma
    q = qty[idx] * cols.contract_size[idx]
    k, sigma, put = cols.strike[idx], iv[idx], (~cols.is_call[idx]).astype(np.float64)
    tau = ((cols.expiry_ms[idx] - t_ms[:, None]) / MS_PER_YEAR)[:, None, :]
    sd = sigma * np.sqrt(tau)
    d1 = ((np.log(s)[:, None] - np.log(k)) + (rate + 0.5 * sigma * sigma) * tau) / sd
    n1 = ndtr(d1)
    delta += n1 @ q - float(put @ q)
    if gamma is not None:
        gamma += (np.exp(-0.5 * d1 * d1) / sd) @ q * (_INV_SQRT_2PI / s)
    qi = q * cols.is_inverse[idx]
    if qi.any():
        # Coin-settled: delta - price/S, gamma - delta/S + price/S^2 (as book_kernels sums them)
        ss = s[:, None]
        kdf = k * np.exp(-rate * tau)
        price = np.maximum(ss * n1 - kdf * ndtr(d1 - sd) + put * (kdf - ss), 0.0) @ qi / s
        delta -= price
        if gamma is not None:
            gamma += (price - (n1 @ qi - float(put @ qi))) / s
    return delta, gamma


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
    s = s0 + _STEPS * (s0 - r.s_lo)
    s[N_PRICE + 1 :] = s0 + _STEPS[N_PRICE + 1 :] * (r.s_hi - s0)
    t = now_ms + (_TIMES * (r.h_ms / N_TIME)).astype(np.int64)
    d, gamma = book_delta_gamma(cols, qty, iv, s, t, rate, width is not None)
    d += delta_coin - d[0, N_PRICE]
    dt = (np.diff(t) / MS_PER_YEAR)[:, None]
    ds = np.diff(s)
    s_hi = s[1:]
    if sl.gamma_eq or sl.charm_eq:
        far = np.maximum(np.abs(s[:-1] - s0), np.abs(s_hi - s0))
        eq = sl.gamma_eq * far + sl.charm_eq * ((t[1:] - now_ms) / MS_PER_YEAR)[:, None]
    else:
        eq = np.zeros((N_TIME, 1))
    # Linear interpolation in price is off by at most |d2 delta/dS2| dS^2/8; time as above.
    if usd:
        slack = (sl.speed * s_hi + 2.0 * sl.gamma) * ds * ds / 8 + sl.charm * s_hi * dt / 2
        eq = eq * s_hi
        d = d * s
    else:
        slack = sl.speed * ds * ds / 8 + sl.charm * dt / 2
    lo_t, hi_t = np.minimum(d[:-1], d[1:]), np.maximum(d[:-1], d[1:])
    v_lo = np.minimum(lo_t[:, :-1], lo_t[:, 1:]) - slack - eq
    v_hi = np.maximum(hi_t[:, :-1], hi_t[:, 1:]) + slack + eq
    lower: FloatArray | float = band.lower
    upper: FloatArray | float = band.upper
    if width is not None and gamma is not None:
        tau = (cols.expiry_ms[cols.opt[qty[cols.opt] != 0.0]] - now_ms) / MS_PER_YEAR
        disc = min(1.0, math.exp(-rate * max(float(tau.max(initial=0.0)), 0.0)))
        lower = upper = _half_widths(width, gamma, s, dt, sl, disc, usd)
    big = max(float(hi_t.max()), -float(lo_t.min()))
    tol = ROUNDING * (band.lower + band.upper + abs(band.center) + big)
    ok = (v_hi <= band.center + upper - tol) & (v_lo >= band.center - lower + tol)
    return _rectangle(ok, s, t, s0, now_ms, vol)


def _rectangle(
    ok: npt.NDArray[np.bool_], s: FloatArray, t: IntArray, s0: float, now_ms: int, vol: float
) -> tuple[float, float, int] | None:
    """The best rectangle of inside cells around (s0, now) (module docstring), in plain Python:
    a few dozen cells."""
    prices, times = s.tolist(), t.tolist()
    best: tuple[float, float, int] | None = None
    best_score = 0.0
    up = down = N_PRICE
    for j, row in enumerate(ok.tolist()):
        # the run of inside cells each side of the index, over every time up to this one
        up = next((i for i in range(up) if not row[N_PRICE + i]), up)
        down = next((i for i in range(down) if not row[N_PRICE - 1 - i]), down)
        if not (up and down):
            break
        c = (prices[N_PRICE - down], prices[N_PRICE + up], times[j + 1])
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
