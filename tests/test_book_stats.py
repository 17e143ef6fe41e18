"""book_stats (bot/core/book.py) gives the same floats as its reference form, the option book
priced by the broadcasting black_scholes, on random books: linear and coin-settled options,
expired ones, options with no or an unknown volatility, delta-one lines, nothing held."""

from __future__ import annotations

import math

import numpy as np
import pytest

from bot.core.book import BookStats, Columns, book_stats
from bot.core.book_kernels import linear_gamma_vanna
from bot.core.greeks import black_scholes, black_scholes_1d, year_fractions
from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from tests.conftest import DAY_MS, NOW_MS

RATES = (0.0, 0.03)


def reference(
    cols: Columns, qty: np.ndarray, s: float, iv: np.ndarray, rate: float, now_ms: int, ext: float
) -> BookStats:
    """book_stats as it was written before its fast paths (black_scholes over boolean masks)."""
    opt = cols.is_option
    coin_per = np.where(
        opt,
        cols.contract_size,
        np.where(cols.is_inverse, cols.contract_size / s, cols.contract_size),
    )
    gross_usd = (float(np.abs(qty) @ coin_per) + abs(ext)) * s
    q = qty[opt]
    if not q.any():
        return BookStats(gross_usd)
    t = year_fractions(cols.expiry_ms[opt], now_ms)
    sigma = iv[opt]
    g = black_scholes(s, cols.strike[opt], t, rate, sigma, cols.is_call[opt])
    size = cols.contract_size[opt]
    inv = cols.is_inverse[opt]
    gamma = np.where(inv, g.gamma - g.delta / s + g.price / (s * s), g.gamma) * size
    stddev = sigma * np.sqrt(t)
    with np.errstate(divide="ignore", invalid="ignore"):
        d2 = (np.log(s / cols.strike[opt]) + (rate - 0.5 * sigma * sigma) * t) / stddev
        bs_vanna = np.where(stddev > 0, -(g.vega / s) * d2 / stddev, 0.0)
    vanna = np.where(inv, bs_vanna - g.vega / s, bs_vanna) * size
    weight = np.abs(q * gamma)
    total = float(weight.sum())
    return BookStats(
        gross_usd,
        option_tau=float(weight @ t) / total if total > 0 else 0.0,
        option_iv=float(weight @ np.nan_to_num(sigma)) / total if total > 0 else math.nan,
        vanna_coin=float(q @ vanna),
    )


def random_book(
    rng: np.random.Generator, inverse: bool, dead: bool
) -> tuple[Columns, np.ndarray, np.ndarray, float]:
    """`inverse`: some options are coin-settled; `dead`: some are expired or have no vol."""
    s = float(rng.uniform(20_000, 80_000))
    lines: dict[tuple[str, str], Instrument] = {
        ("a", "PERP"): Instrument("PERP", "BTC", Kind.PERP),
        ("a", "IPERP"): Instrument("IPERP", "BTC", Kind.PERP, Settlement.INVERSE, 10.0),
        ("a", "SPOT"): Instrument("SPOT", "BTC", Kind.SPOT),
    }
    n = int(rng.integers(1, 25))
    for i in range(n):
        days = float(rng.choice([-1.0, 0.05, 0.5, 7.0, 30.0, 90.0] if dead else [0.05, 7.0, 90.0]))
        settle = Settlement.INVERSE if inverse and rng.random() < 0.5 else Settlement.LINEAR
        lines[("a", f"O{i}")] = Instrument(
            f"O{i}",
            "BTC",
            Kind.OPTION,
            settle,
            float(rng.choice([1.0, 0.1])),
            expiry_ms=NOW_MS + int(days * DAY_MS),
            strike=float(round(s * rng.uniform(0.7, 1.3), -2)),
            option_type=OptionType.CALL if rng.random() < 0.5 else OptionType.PUT,
        )
    cols = Columns.of("BTC", lines)
    m = len(cols.keys)
    qty = np.where(rng.random(m) < 0.7, rng.normal(0.0, 20.0, m), 0.0)
    iv = np.where(cols.is_option, rng.uniform(0.2, 1.5, m), np.nan)
    if dead:
        iv = np.where(cols.is_option & (rng.random(m) < 0.15), 0.0, iv)
        iv = np.where(cols.is_option & (rng.random(m) < 0.1), np.nan, iv)
    return cols, qty, iv, s


def same(a: BookStats, b: BookStats) -> bool:
    """Equal floats, nan equal to nan."""
    pairs = zip(
        (a.gross_usd, a.option_tau, a.option_iv, a.vanna_coin),
        (b.gross_usd, b.option_tau, b.option_iv, b.vanna_coin),
        strict=True,
    )
    return all(x == y or (math.isnan(x) and math.isnan(y)) for x, y in pairs)


@pytest.mark.parametrize("inverse", [False, True])
@pytest.mark.parametrize("dead", [False, True])
@pytest.mark.parametrize("seed", range(40))
def test_book_stats_gives_the_reference_floats(seed: int, inverse: bool, dead: bool) -> None:
    rng = np.random.default_rng(seed)
    cols, qty, iv, s = random_book(rng, inverse, dead)
    rate = RATES[seed % 2]
    ext = float(rng.normal(0.0, 1.0)) if seed % 3 else 0.0
    now = NOW_MS + int(rng.integers(0, DAY_MS))
    got = book_stats(cols, qty, s, iv, rate, now, ext)
    assert same(got, reference(cols, qty, s, iv, rate, now, ext)), (got, seed)


def test_book_stats_with_no_option_held_counts_gross_only() -> None:
    cols, qty, iv, s = random_book(np.random.default_rng(7), True, False)
    qty = np.where(cols.is_option, 0.0, qty)
    got = book_stats(cols, qty, s, iv, 0.0, NOW_MS, 0.5)
    assert same(got, reference(cols, qty, s, iv, 0.0, NOW_MS, 0.5))
    assert got.option_tau == 0.0 and math.isnan(got.option_iv) and got.vanna_coin == 0.0


@pytest.mark.parametrize("seed", range(20))
def test_linear_gamma_vanna_is_black_scholes(seed: int) -> None:
    """Gamma is black_scholes_1d's to the bit; vanna is -(vega/S) d2 / (sigma sqrt(t)), which
    a central difference of the delta in vol confirms."""
    rng = np.random.default_rng(seed)
    n = int(rng.integers(1, 20))
    s = float(rng.uniform(20_000, 80_000))
    k = s * rng.uniform(0.7, 1.3, n)
    t = rng.uniform(0.001, 1.0, n)
    sigma = rng.uniform(0.2, 1.5, n)
    rate = RATES[seed % 2]
    call = rng.random(n) < 0.5
    got = linear_gamma_vanna(s, k, t, rate, sigma)
    assert got is not None
    gamma, vanna = got
    g = black_scholes_1d(s, k, t, rate, sigma, call)
    assert np.array_equal(gamma, g.gamma)
    h = 1e-5
    up = black_scholes_1d(s, k, t, rate, sigma + h, call).delta
    down = black_scholes_1d(s, k, t, rate, sigma - h, call).delta
    np.testing.assert_allclose(vanna, (up - down) / (2 * h), rtol=1e-5, atol=1e-9)


def test_linear_gamma_vanna_leaves_expired_and_volless_options_to_the_general_path() -> None:
    k = np.array([50_000.0, 60_000.0])
    live = np.array([0.1, 0.1])
    assert linear_gamma_vanna(55_000.0, k, np.array([0.1, 0.0]), 0.0, live) is None
    assert linear_gamma_vanna(55_000.0, k, live, 0.0, np.array([0.6, 0.0])) is None
    assert linear_gamma_vanna(55_000.0, k, live, 0.0, np.array([0.6, np.nan])) is None
