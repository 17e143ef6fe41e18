"""The trigger corridor: its bound is safe (no price or time inside it takes the delta out of the
band), the fast scalar pricing agrees with the vectorized kernel, and a backtest makes the very
same decisions and orders with the corridor on and off, and with the fast-forward over quiet
ticks on and off."""

from __future__ import annotations

import dataclasses
import math
from pathlib import Path

import numpy as np
import pytest

from bot.backtest.path import PathResult, PathSpec, run_path
from bot.clock import VirtualClock, run_virtual
from bot.config import Settings, load_settings
from bot.core import book, spanbook
from bot.core.book import Columns, exposure_of
from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import Ticker
from bot.core.policy import Band
from bot.hedger.corridor import Corridor, corridor
from bot.hedger.gate import CorridorGate, Held
from bot.hedger.hedger import Hedger
from bot.venues.sim import SimVenue
from tests.conftest import DAY_MS, NOW_MS

HOUR_MS = 3_600_000


def random_book(rng: np.random.Generator, n: int) -> tuple[Columns, np.ndarray, np.ndarray, float]:
    """Options of several expiries (one already expired), both settlements, a linear and an
    inverse perp and spot."""
    s0 = float(rng.uniform(20_000, 80_000))
    lines: dict[tuple[str, str], Instrument] = {
        ("a", "PERP"): Instrument("PERP", "BTC", Kind.PERP, amount_step=0.001),
        ("a", "IPERP"): Instrument(
            "IPERP", "BTC", Kind.PERP, Settlement.INVERSE, contract_size=10.0
        ),
        ("a", "SPOT"): Instrument("SPOT", "BTC", Kind.SPOT),
    }
    for i in range(n):
        days = float(rng.choice([-1.0, 0.2, 2.0, 7.0, 30.0, 90.0])) if i else -1.0
        lines[("a", f"O{i}")] = Instrument(
            f"O{i}",
            "BTC",
            Kind.OPTION,
            Settlement.INVERSE if rng.random() < 0.5 else Settlement.LINEAR,
            expiry_ms=NOW_MS + int(days * DAY_MS),
            strike=float(round(s0 * rng.uniform(0.7, 1.3), -2)),
            option_type=OptionType.CALL if rng.random() < 0.5 else OptionType.PUT,
        )
    cols = Columns.of("BTC", lines)
    qty = rng.normal(0, 3, len(cols.keys))
    iv = np.where(cols.is_option, rng.uniform(0.3, 1.2, len(cols.keys)), np.nan)
    return cols, qty, iv, s0


def delta_at(cols: Columns, qty: np.ndarray, iv: np.ndarray, s: float, now: int) -> float:
    zero = np.zeros(len(cols.keys))
    return exposure_of(cols, qty, zero, s, iv, 0.01, now, "usd").delta_coin


@pytest.mark.parametrize("unit", ["coin", "usd"])
@pytest.mark.parametrize("seed", range(12))
def test_no_price_or_time_inside_the_corridor_leaves_the_band(unit: str, seed: int) -> None:
    rng = np.random.default_rng(seed)
    cols, qty, iv, s0 = random_book(rng, 8)
    d0 = delta_at(cols, qty, iv, s0, NOW_MS)
    scale = 1.0 if unit == "coin" else s0
    # A band the delta sits in, off-centre, so both edges matter.
    width = abs(d0 * scale) * rng.uniform(0.1, 1.0) + scale * 0.5
    band = Band(center=d0 * scale + rng.uniform(-0.5, 0.5) * width, lower=width, upper=width)
    band = Band(center=band.center, lower=width, upper=width, unit=unit)  # type: ignore[arg-type]
    assert band.contains(d0 * scale)
    c = corridor(cols, qty, iv, s0, 0.01, NOW_MS, d0, band, 3_600_000)
    assert c is not None, "a corridor exists for a book inside its band"
    assert c.lo < s0 < c.hi and NOW_MS < c.until_ms <= NOW_MS + 3_600_000
    for s in np.linspace(c.lo, c.hi, 41):
        for now in np.linspace(NOW_MS, c.until_ms, 7).astype(np.int64):
            d = delta_at(cols, qty, iv, float(s), int(now))
            value = d if unit == "coin" else d * float(s)
            assert band.contains(value), (float(s), int(now), value, band)


def test_an_expired_option_strike_bounds_the_corridor() -> None:
    expired = Instrument(
        "X",
        "BTC",
        Kind.OPTION,
        expiry_ms=NOW_MS - DAY_MS,
        strike=60_500.0,
        option_type=OptionType.CALL,
    )
    cols = Columns.of("BTC", {("a", "X"): expired})
    qty, iv = np.array([-1.0]), np.array([0.6])
    c = corridor(cols, qty, iv, 60_000.0, 0.0, NOW_MS, 0.0, Band(0.0, 0.5, 0.5), 60_000)
    assert c is not None and c.hi < 60_500.0  # the step in delta at the strike stays out


def test_no_corridor_outside_the_band_or_for_a_vanishing_vol() -> None:
    rng = np.random.default_rng(1)
    cols, qty, iv, s0 = random_book(rng, 4)
    d0 = delta_at(cols, qty, iv, s0, NOW_MS)
    outside = Band(center=d0 + 2.0, lower=1.0, upper=1.0)
    assert corridor(cols, qty, iv, s0, 0.0, NOW_MS, d0, outside, 60_000) is None
    held_option = int(cols.opt[1])
    iv = iv.copy()
    iv[held_option] = 1e-9
    inside = Band(center=d0, lower=1.0, upper=1.0)
    assert corridor(cols, qty, iv, s0, 0.0, NOW_MS, d0, inside, 60_000) is None


@pytest.mark.parametrize("rate", [0.0, 0.03])  # at no rate the plain-float path skips N(d2)
@pytest.mark.parametrize("seed", range(6))
def test_scalar_and_vector_pricing_agree(
    seed: int, rate: float, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(seed)
    cols, qty, iv, s0 = random_book(rng, 10)
    iv[int(cols.opt[2])] = 0.0  # zero vol: the degenerate branch
    pending = np.where(rng.random(len(qty)) < 0.3, rng.normal(0, 1, len(qty)), 0.0)
    now = NOW_MS + 3 * HOUR_MS
    seen = []
    for small, scalar in ((10_000, 0), (0, 10_000), (0, -1)):  # plain Python, hybrid, numpy
        monkeypatch.setattr(book, "SMALL_BOOK", small)
        monkeypatch.setattr(book, "SCALAR_MAX", scalar)
        for view in ("coin", "usd"):
            seen.append((view, exposure_of(cols, qty, pending, s0, iv, rate, now, view, 0.25)))
    numpy_coin = seen[4][1]
    numpy_usd = seen[5][1]
    for view, e in seen:
        ref = numpy_coin if view == "coin" else numpy_usd
        for field in ("delta_coin", "gamma_coin", "vega_usd", "theta_usd", "in_flight_coin"):
            a, b = getattr(e, field), getattr(ref, field)
            assert math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9), (view, field, a, b)


# ---- the backtest: the same decisions and orders with the corridor on and off ---------------

MARKET = """
bot_id = "corridor"
[engine]
stale_after_s = 120
hedge_view = "{view}"
[execution]
order_timeout_s = 10
book_max_age_s = 120
[risk]
max_order_contracts = 100
max_orders_per_minute = 60
[sim]
seed = 1
tick_ms = 60000
latency_ms = 200
partial_fill_rate = 0.4
reject_rate = 0.1
[sim.underlyings.BTC]
price = 60_000.0
vol = {vol}
jump_intensity = 40.0
jump_std = 0.02
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
option_type = "call"
strike = 60_000
expiry_days = 0.5
qty = -8
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "inverse"
option_type = "put"
strike = 58_000
expiry_days = 3
qty = -12
[[positions]]
underlying = "BTC"
kind = "option"
option_type = "call"
strike = 66_000
expiry_days = 45
qty = 15
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
unit = "{unit}"
[hedge.BTC.policy]
{policy}
"""
# Whalley-Wilmott (its band moves with gamma, price and time), in coin and in USD.
WW_COIN = 'kind = "whalley_wilmott"\nrisk_aversion = 0.003\nband_floor = 0.05\nband_cap = 20.0'
WW_USD = 'kind = "whalley_wilmott"\nrisk_aversion = 0.001\nband_floor = 3000\nband_cap = 1e6'


def market_toml(**market: object) -> str:
    """MARKET with `policy` (a [hedge.BTC.policy] body), by default the fixed `band`."""
    policy = market.get("policy", f'kind = "band"\nband = {market.get("band")}')
    return MARKET.format(**{**market, "policy": policy})


def settings(tmp: Path, corridor_on: bool, **market: object) -> Settings:
    path = tmp / "c.toml"
    path.write_text(market_toml(**market))
    s = load_settings(path)
    return s.model_copy(update={"engine": s.engine.model_copy(update={"corridor": corridor_on})})


@pytest.mark.parametrize(
    ("seed", "market"),
    [
        (3, {"view": "usd", "vol": 0.6, "unit": "coin", "band": 0.4}),
        (4, {"view": "coin", "vol": 0.9, "unit": "coin", "band": 1.0}),
        (5, {"view": "usd", "vol": 0.5, "unit": "usd", "band": 20_000}),
        (6, {"view": "usd", "vol": 0.6, "unit": "coin", "policy": WW_COIN}),
        (7, {"view": "coin", "vol": 0.9, "unit": "usd", "policy": WW_USD}),
    ],
)
def test_backtest_decides_and_orders_the_same_with_the_corridor_on_and_off(
    tmp_path: Path, seed: int, market: dict[str, object], monkeypatch: pytest.MonkeyPatch
) -> None:
    evaluated = {"n": 0}
    real = Hedger.evaluate

    def counted(self: Hedger, underlying: str):  # type: ignore[no-untyped-def]
        evaluated["n"] += 1
        return real(self, underlying)

    monkeypatch.setattr(Hedger, "evaluate", counted)
    spec = PathSpec(seed=seed, days=1.5, tick_ms=60_000, start_ms=NOW_MS)
    runs = {}
    for on in (False, True):
        evaluated["n"] = 0
        events = tmp_path / f"events-{on}.jsonl"
        result = run_path(settings(tmp_path, on, **market), spec, events=events)
        runs[on] = (result, events.read_text().splitlines(), evaluated["n"])
    (off, off_events, off_n), (on, on_events, on_n) = runs[False], runs[True]
    assert off.orders > 3 and off.fills > 0, "the market makes the hedger trade"
    assert any('"order.rejected"' in e or '"kind": "reject"' in e for e in off_events) or (
        off.rejects > 0
    ), "rejects happen on this market"
    assert on_events == off_events  # every decision, order, fill and alert, in order
    for field in ("orders", "fills", "rejects", "decisions", "pnl_usd", "fees_usd"):
        assert getattr(on, field) == getattr(off, field), field
    assert on.ticks_in_band == off.ticks_in_band
    assert on_n < off_n * 0.7, f"the corridor skips evaluations ({on_n} vs {off_n})"


def test_the_gate_absorbs_only_fresh_ticks_inside_the_corridor_until_it_ends() -> None:
    ref, option = ("sim", "PERP"), ("sim", "OPT")

    def tick(symbol: str, px: float, ts: int) -> Ticker:
        return Ticker(symbol, ts, bid=px, ask=px, index=px)

    async def main() -> None:
        clock = VirtualClock(NOW_MS)
        gate = CorridorGate(clock)
        c = Corridor(lo=59_000.0, hi=61_000.0, until_ms=NOW_MS + 60_000)
        gate.set("BTC", Held(c.lo, c.hi, ref, NOW_MS, 15_000.0, 3, c))
        assert gate.absorbs("BTC", ref, tick("PERP", 60_500.0, NOW_MS), 3)
        assert not gate.absorbs("BTC", ref, tick("PERP", 61_500.0, NOW_MS), 3)  # outside
        assert not gate.absorbs("BTC", ref, tick("PERP", 60_000.0, NOW_MS), 4)  # feeds moved
        await clock.advance_to(NOW_MS + 20_000)
        # an old hedge-line ticker: the decision would be a halt, so it is due
        assert not gate.absorbs("BTC", ref, tick("PERP", 60_000.0, NOW_MS), 3)
        assert not gate.absorbs("BTC", option, tick("OPT", 100.0, NOW_MS + 20_000), 3)
        assert gate.absorbs("BTC", ref, tick("PERP", 60_000.0, NOW_MS + 20_000), 3)
        assert gate.absorbs("BTC", option, tick("OPT", 100.0, NOW_MS + 20_000), 3)
        await clock.advance_to(NOW_MS + 60_000)
        assert "BTC" not in gate.held  # time decay could have used the margin: it ended
        assert not gate.absorbs("BTC", ref, tick("PERP", 60_000.0, NOW_MS + 60_000), 3)

    run_virtual(main)


def fast_forward_settings(s: Settings, on: bool, model: str | None = None) -> Settings:
    sim = s.sim
    if model is not None:
        und = {u: x.model_copy(update={"model": model}) for u, x in sim.underlyings.items()}
        sim = sim.model_copy(update={"underlyings": und})
    eng = s.engine.model_copy(update={"fast_forward": on})
    return s.model_copy(update={"engine": eng, "sim": sim})


@pytest.mark.parametrize(
    ("seed", "market", "model"),
    [
        (3, {"view": "usd", "vol": 0.6, "unit": "coin", "band": 0.4}, None),
        (4, {"view": "coin", "vol": 0.9, "unit": "coin", "band": 1.0}, None),
        (5, {"view": "usd", "vol": 0.5, "unit": "usd", "band": 20_000}, None),
        # Regime: an option's ask falls to 0 before expiry (a bad-data alert at that tick),
        # which a span must not step over (bot/backtest/quoted.py).
        (6, {"view": "usd", "vol": 0.6, "unit": "coin", "band": 0.4}, "regime"),
        (7, {"view": "usd", "vol": 0.6, "unit": "coin", "band": 0.4}, "heston"),
        (8, {"view": "usd", "vol": 0.6, "unit": "coin", "policy": WW_COIN}, None),
    ],
)
@pytest.mark.parametrize("detail", [True, False])
def test_fast_forward_gives_the_same_path(
    tmp_path: Path,
    seed: int,
    market: dict[str, object],
    model: str | None,
    detail: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Quiet ticks stepped over (engine.fast_forward) give the same decisions, orders, fills,
    report figures, attribution and series as every tick through the full path; the market's
    draws are the same, so the options' expiry, partial fills and rejects land alike."""
    quiet = {"n": 0}
    real = SimVenue.quiet_tick

    def counted(self: SimVenue, prices: list[float], now_ms: int, ticks: int = 1) -> None:
        quiet["n"] += ticks
        real(self, prices, now_ms, ticks)

    monkeypatch.setattr(SimVenue, "quiet_tick", counted)
    base = settings(tmp_path, True, **market)
    spec = PathSpec(seed=seed, days=1.5, tick_ms=60_000, start_ms=NOW_MS)
    runs = {}
    for on in (False, True):
        quiet["n"] = 0
        events = tmp_path / f"events-{on}.jsonl"
        s = fast_forward_settings(base, on, model)
        result = run_path(s, spec, events=events, detail=detail)
        runs[on] = (result, events.read_text().splitlines(), quiet["n"])
    (off, off_events, off_quiet), (on, on_events, on_quiet) = runs[False], runs[True]
    assert off.orders > 3 and off.fills > 0, "the market makes the hedger trade"
    assert off_quiet == 0
    if model != "heston":  # heston's IV moves every tick: no tick is quiet
        assert on_quiet > off.ticks * 0.2, f"fast-forward skips ticks ({on_quiet}/{off.ticks})"
    assert on_events == off_events  # every decision, order, fill and alert, in order
    for f in dataclasses.fields(PathResult):
        if f.name != "attribution":
            assert getattr(on, f.name) == getattr(off, f.name), f.name
    for part, value in off.attribution.as_dict().items():
        assert on.attribution.as_dict()[part] == pytest.approx(value, rel=1e-9, abs=1e-6), part


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("view", ["usd", "coin"])
@pytest.mark.parametrize("scalar_span", [0, 10_000])
def test_span_greeks_are_exposure_of_at_each_tick(
    seed: int, view: str, scalar_span: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The fast-forward's attribution values a quiet span's book at every tick at once
    (vectorized, or one tick at a time for a short span): the same greeks as exposure_of."""
    monkeypatch.setattr(spanbook, "SCALAR_SPAN", scalar_span)
    rng = np.random.default_rng(seed)
    cols, qty, iv, s0 = random_book(rng, 12)
    s = s0 * np.exp(np.cumsum(rng.normal(0, 0.002, 30)))
    now = NOW_MS + 60_000 * np.arange(1, 31, dtype=np.int64)
    g = spanbook.span_greeks(cols, qty, iv, s, now, 0.01, view)  # type: ignore[arg-type]
    zero = np.zeros(len(cols.keys))
    for i in range(len(s)):
        e = exposure_of(cols, qty, zero, float(s[i]), iv, 0.01, int(now[i]), view)  # type: ignore[arg-type]
        assert g.delta_coin[i] == pytest.approx(e.delta_coin, rel=1e-9, abs=1e-9)
        assert g.gamma_coin[i] == pytest.approx(e.gamma_coin, rel=1e-9, abs=1e-12)
        assert g.vega_usd[i] == pytest.approx(e.vega_usd, rel=1e-9, abs=1e-9)
        assert g.theta_usd[i] == pytest.approx(e.theta_usd, rel=1e-9, abs=1e-9)
