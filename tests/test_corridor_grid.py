"""The trigger corridor is safe: no index and time inside it moves the delta out of the band.

Random books (calls and puts, linear and coin-settled, near expiry and expired, delta-one lines
of both kinds), both band units, with and without the coin value of coin-settled lines; the
delta is the decision path's (exposure_of), checked on a dense set of prices and times inside
the returned corridor, which includes the grid's nodes and the midpoints of its cells.
"""

from __future__ import annotations

import math

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.book import Columns, book_stats, exposure_of
from bot.core.greeks import MS_PER_YEAR, black_scholes
from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import UnderlyingMarket
from bot.core.policy import Aim, Band
from bot.core.policy.cost import WhalleyWilmott
from bot.hedger.corridor import corridor
from bot.hedger.corridor_grid import N_PRICE, N_TIME, CostWidth
from tests.conftest import DAY_MS, NOW_MS

HOUR_MS = 3_600_000
RATE = 0.03


def book(seed: int, n: int) -> tuple[Columns, np.ndarray, np.ndarray, float]:
    rng = np.random.default_rng(seed)
    s0 = float(rng.uniform(20_000, 80_000))
    lines: dict[tuple[str, str], Instrument] = {
        ("a", "PERP"): Instrument("PERP", "BTC", Kind.PERP, amount_step=0.001),
        ("a", "IPERP"): Instrument(
            "IPERP", "BTC", Kind.PERP, Settlement.INVERSE, contract_size=10.0
        ),
        ("a", "SPOT"): Instrument("SPOT", "BTC", Kind.SPOT),
    }
    for i in range(n):
        days = float(rng.choice([-1.0, 0.05, 0.2, 2.0, 7.0, 30.0]))
        strike = s0 * rng.uniform(0.8, 1.2)
        if days < 0 and abs(strike / s0 - 1) < 0.01:
            strike = s0 * 1.05  # an expired option's strike is off the index
        lines[("a", f"O{i}")] = Instrument(
            f"O{i}",
            "BTC",
            Kind.OPTION,
            Settlement.INVERSE if rng.random() < 0.5 else Settlement.LINEAR,
            expiry_ms=NOW_MS + int(days * DAY_MS),
            strike=float(round(strike, -1)),
            option_type=OptionType.CALL if rng.random() < 0.5 else OptionType.PUT,
        )
    cols = Columns.of("BTC", lines)
    qty = rng.normal(0, 5, len(cols.keys))
    qty[rng.random(len(qty)) < 0.2] = 0.0
    iv = np.where(cols.is_option, rng.uniform(0.2, 1.5, len(cols.keys)), np.nan)
    return cols, qty, iv, s0


def equity(cols: Columns, qty: np.ndarray, iv: np.ndarray, s: float, now: int) -> float:
    """The coin value of the coin-settled lines `qty` holds in accounts whose balances are read
    (bot/hedger/equity.py's terms, less the basis): q P / S for options, -q F / S for inverse
    delta-one lines."""
    opt = cols.is_option & cols.is_inverse & (qty != 0.0)
    t = np.maximum(cols.expiry_ms[opt] - now, 0) / MS_PER_YEAR
    price = black_scholes(s, cols.strike[opt], t, RATE, iv[opt], cols.is_call[opt]).price
    value = float((qty[opt] * cols.contract_size[opt]) @ price) / s
    return value - float(qty @ cols.inverse_usd) / s


def delta(
    cols: Columns, qty: np.ndarray, iv: np.ndarray, s: float, now: int, read: np.ndarray | None
) -> float:
    """The decision's coin delta; `read`: the lines in accounts whose balances count."""
    zero = np.zeros(len(cols.keys))
    d = exposure_of(cols, qty, zero, s, iv, RATE, now, "usd").delta_coin
    return d + (equity(cols, np.where(read, qty, 0.0), iv, s, now) if read is not None else 0.0)


def points(lo: float, hi: float, s0: float, now: int, until: int) -> list[tuple[float, int]]:
    """Prices: each side of s0 in 4 N_PRICE steps (the grid's N_PRICE cells, a side, each cut in
    four when the corridor reaches the whole grid) and a uniform sweep; times: the grid's N_TIME
    steps over the window and their midpoints."""
    prices = np.concatenate(
        (
            np.linspace(lo, s0, 4 * N_PRICE + 1),
            np.linspace(s0, hi, 4 * N_PRICE + 1),
            np.linspace(lo, hi, 37),
        )
    )
    times = np.linspace(now, until, 2 * N_TIME + 1).astype(np.int64)
    return [(float(s), int(t)) for s in prices for t in times]


@settings(max_examples=120, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 6),
    usd=st.booleans(),
    coin_equity=st.booleans(),
    off=st.floats(-0.8, 0.8),
    width=st.floats(0.02, 3.0),
)
def test_no_price_or_time_inside_the_corridor_leaves_the_band(
    seed: int, n: int, usd: bool, coin_equity: bool, off: float, width: float
) -> None:
    cols, qty, iv, s0 = book(seed, n)
    # some accounts' balances read, some not
    read = np.random.default_rng(seed + 1).random(len(qty)) < 0.6 if coin_equity else None
    d0 = delta(cols, qty, iv, s0, NOW_MS, read)
    scale = s0 if usd else 1.0
    half = width * scale
    band = Band(d0 * scale + off * half, half, half, "usd" if usd else "coin")
    c = corridor(cols, qty, iv, s0, RATE, NOW_MS, d0, band, HOUR_MS, coin_equity)
    if c is None:
        return
    assert c.lo < s0 < c.hi and NOW_MS < c.until_ms <= NOW_MS + HOUR_MS
    for s, t in points(c.lo, c.hi, s0, NOW_MS, c.until_ms):
        v = delta(cols, qty, iv, s, t, read) * (s if usd else 1.0)
        assert band.contains(v), (s, t, v, band, c)


def test_the_grid_corridor_is_wider_and_longer_than_the_bound_on_the_straddle() -> None:
    """The standard scenario's short ATM straddle: the bound alone held ~20 minutes and ~0.3%
    of the index; the grid holds the hour over most of the band's reach."""
    s0 = 60_000.0
    lines = {
        ("a", f"{kind}"): Instrument(
            kind,
            "BTC",
            Kind.OPTION,
            expiry_ms=NOW_MS + 31 * DAY_MS,
            strike=s0,
            option_type=OptionType.CALL if kind == "C" else OptionType.PUT,
        )
        for kind in ("C", "P")
    }
    cols = Columns.of("BTC", lines)
    qty, iv = np.array([-10.0, -10.0]), np.array([0.6, 0.6])
    d0 = delta(cols, qty, iv, s0, NOW_MS, None)
    band = Band(d0, 0.5, 0.5)  # just after a trade to the target
    c = corridor(cols, qty, iv, s0, 0.0, NOW_MS, d0, band, HOUR_MS)
    assert c is not None
    gamma = exposure_of(cols, qty, np.zeros(2), s0, iv, 0.0, NOW_MS, "usd").gamma_coin
    reach_up = (d0 - (band.center - band.lower)) / abs(gamma)  # short gamma: up lowers delta
    assert c.until_ms == NOW_MS + HOUR_MS
    assert c.hi - s0 > 0.7 * reach_up


@settings(max_examples=80, deadline=None)
@given(
    seed=st.integers(0, 2**31),
    n=st.integers(1, 5),
    usd=st.booleans(),
    aversion=st.floats(1e-5, 1e-1),
    spread=st.floats(0.0, 5e-4),
    floor=st.floats(0.001, 0.5),
    off=st.floats(-0.9, 0.9),
)
def test_whalley_wilmott_never_fires_inside_its_corridor(
    seed: int, n: int, usd: bool, aversion: float, spread: float, floor: float, off: float
) -> None:
    """The policy itself (band_for on the decision path's exposure and book statistics) at
    every point inside the corridor, whatever the spread (the corridor counts the fee alone)."""
    cols, qty, iv, s0 = book(seed, n)
    unit = "usd" if usd else "coin"
    scale = s0 if usd else 1.0
    policy = WhalleyWilmott(
        aversion,
        floor * scale,
        50.0 * scale,
        aim=Aim(unit=unit),  # type: ignore[arg-type]
    )
    fee = 5e-4
    zero = np.zeros(len(cols.keys))

    def band_at(s: float, t: int, half_spread: float) -> tuple[Band, float]:
        stats = book_stats(cols, qty, s, iv, RATE, t)
        exp = exposure_of(cols, qty, zero, s, iv, RATE, t, "usd", stats=stats)
        mkt = UnderlyingMarket(
            "BTC", t, s, math.nan, RATE, hedge_fee=fee, hedge_half_spread=half_spread
        )
        return policy.band_for(exp, mkt, t), exp.delta_in(unit)  # type: ignore[arg-type]

    band, v0 = band_at(s0, NOW_MS, spread)
    # Centre the book's delta somewhere in its band: the aim is where it is, less an offset.
    policy = WhalleyWilmott(
        aversion,
        floor * scale,
        50.0 * scale,
        aim=Aim(unit=unit, target=v0 - off * band.upper),  # type: ignore[arg-type]
    )
    band, v0 = band_at(s0, NOW_MS, spread)
    width = CostWidth(1.5 * fee / aversion, policy.floor, policy.cap)
    d0 = v0 / scale
    gamma = exposure_of(cols, qty, zero, s0, iv, RATE, NOW_MS, "usd").gamma_coin
    c = corridor(cols, qty, iv, s0, RATE, NOW_MS, d0, band, HOUR_MS, False, width, gamma)
    if c is None:
        return
    for s, t in points(c.lo, c.hi, s0, NOW_MS, c.until_ms):
        b, v = band_at(s, t, 0.0)
        assert b.contains(v), (s, t, v, b, c)
