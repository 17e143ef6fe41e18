"""Greeks: published reference values, property tests and degenerate inputs."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.greeks import (
    MS_PER_YEAR,
    Greeks,
    black76,
    black_scholes,
    coin_settled_delta,
    premium_adjusted_delta,
    premium_adjusted_gamma,
    year_fraction,
    year_fractions,
)

FloatArray = npt.NDArray[np.float64]

# --------------------------------------------------------------------------------------------
# Reference values (tests/fixtures/greeks.json; its README says where they come from)
# --------------------------------------------------------------------------------------------

REFERENCE_PATH = Path(__file__).resolve().parent / "fixtures" / "greeks.json"


def _load_reference() -> tuple[dict[str, Any] | None, str]:
    """The reference document, or None and why it could not be used."""
    path = REFERENCE_PATH
    hint = f"expected the reference vectors at {path} (part of the repository)"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None, f"reference file not found: {hint}"
    except (OSError, json.JSONDecodeError) as exc:
        return None, f"reference file unreadable ({exc!r}): {hint}"
    if not isinstance(doc, dict) or not isinstance(doc.get("cases"), list) or not doc["cases"]:
        return None, f"{path}: no 'cases' list in the reference file"
    tol = doc.get("tolerance", {})
    if not isinstance(tol, dict) or not isinstance(tol.get("absolute"), int | float):
        return None, f"{path}: no numeric 'tolerance.absolute' in the reference file"
    return doc, ""


_REFERENCE, _REFERENCE_ERROR = _load_reference()
_CASES: list[Any] = _REFERENCE["cases"] if _REFERENCE is not None else [None]
_CASE_IDS = (
    [f"case{i}" for i in range(len(_CASES))] if _REFERENCE is not None else ["reference-missing"]
)

# expected field -> (option side: True call, False put, None both must match; Greeks attribute)
_FIELDS: dict[str, tuple[bool | None, str]] = {
    "call_price": (True, "price"),
    "put_price": (False, "price"),
    "call_delta": (True, "delta"),
    "put_delta": (False, "delta"),
    "gamma": (None, "gamma"),
    "vega": (None, "vega"),
    "call_theta_per_year": (True, "theta"),
    "put_theta_per_year": (False, "theta"),
}


def test_reference_file_is_present() -> None:
    if _REFERENCE is None:
        pytest.fail(_REFERENCE_ERROR)


@pytest.mark.parametrize("case", _CASES, ids=_CASE_IDS)
def test_reference_values(case: dict[str, Any] | None) -> None:
    if _REFERENCE is None or case is None:
        pytest.fail(_REFERENCE_ERROR)
    atol = float(_REFERENCE["tolerance"]["absolute"])
    inputs = case["inputs"]
    missing = {"S", "K", "T", "r", "sigma"} - set(inputs)
    assert not missing, f"{case.get('source')}: inputs lack {sorted(missing)}"
    unknown = set(case["expected"]) - set(_FIELDS)
    assert not unknown, f"{case.get('source')}: no check for expected fields {sorted(unknown)}"

    g = black_scholes(
        inputs["S"], inputs["K"], inputs["T"], inputs["r"], inputs["sigma"], [True, False]
    )
    errors = []
    for field, expected in case["expected"].items():
        side, attr = _FIELDS[field]
        values: FloatArray = getattr(g, attr)
        sides = [True, False] if side is None else [side]
        for is_call in sides:
            value = float(values[0 if is_call else 1])
            if not abs(value - float(expected)) <= atol:
                which = "call" if is_call else "put"
                errors.append(f"{field} ({which}): got {value:.9g}, expected {expected} +- {atol}")
    assert not errors, f"{case.get('source')}:\n" + "\n".join(errors)


def test_reference_cases_vectorized_at_once() -> None:
    """All reference cases in one call agree with one call per case."""
    if _REFERENCE is None:
        pytest.fail(_REFERENCE_ERROR)
    ins = [c["inputs"] for c in _REFERENCE["cases"]]
    cols = {k: np.array([i[k] for i in ins], dtype=np.float64) for k in ("S", "K", "T", "r")}
    sig = np.array([i["sigma"] for i in ins], dtype=np.float64)
    both = black_scholes(
        cols["S"][:, None],
        cols["K"][:, None],
        cols["T"][:, None],
        cols["r"][:, None],
        sig[:, None],
        np.array([[True, False]]),
    )
    assert both.price.shape == (len(ins), 2)
    for n, i in enumerate(ins):
        one = black_scholes(i["S"], i["K"], i["T"], i["r"], i["sigma"], [True, False])
        for f in dataclasses.fields(Greeks):
            np.testing.assert_allclose(getattr(both, f.name)[n], getattr(one, f.name), rtol=1e-12)


# --------------------------------------------------------------------------------------------
# Strategies
# --------------------------------------------------------------------------------------------

SETTINGS = settings(max_examples=200, deadline=None)
ONE_HOUR = 1.0 / 365.0 / 24.0


class Case(NamedTuple):
    S: float
    K: float
    T: float
    r: float
    sigma: float


def _finite(lo: float, hi: float) -> st.SearchStrategy[float]:
    return st.floats(lo, hi, allow_nan=False, allow_infinity=False)


@st.composite
def cases(draw: st.DrawFn) -> Case:
    """S, K in [1, 1e6] with K/S in [0.2, 5]; T 1 hour to 5 years; sigma 5% to 300%."""
    s = draw(_finite(1.0, 1e6))
    k = draw(_finite(max(1.0, 0.2 * s), min(1e6, 5.0 * s)))
    return Case(
        S=s,
        K=k,
        T=draw(_finite(ONE_HOUR, 5.0)),
        r=draw(_finite(-0.02, 0.2)),
        sigma=draw(_finite(0.05, 3.0)),
    )


def _bs(c: Case, is_call: bool, **bump: float) -> Greeks:
    return black_scholes(
        c.S + bump.get("dS", 0.0),
        c.K,
        c.T + bump.get("dT", 0.0),
        c.r,
        c.sigma + bump.get("dsigma", 0.0),
        is_call,
    )


def _close(got: Any, want: Any, atol: float, rtol: float = 0.0) -> None:
    got_f, want_f = float(got), float(want)
    assert abs(got_f - want_f) <= atol + rtol * abs(want_f), (
        f"got {got_f!r}, want {want_f!r} (diff {got_f - want_f:.3g}, atol {atol:.3g}, rtol {rtol})"
    )


def _stddev(c: Case) -> float:
    return c.sigma * math.sqrt(c.T)


# --------------------------------------------------------------------------------------------
# Properties
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(cases())
def test_put_call_parity_black_scholes(c: Case) -> None:
    call, put = _bs(c, True), _bs(c, False)
    _close(call.price - put.price, c.S - c.K * math.exp(-c.r * c.T), atol=1e-9 * (c.S + c.K))
    _close(call.delta - put.delta, 1.0, atol=1e-12)
    _close(call.gamma, put.gamma, atol=0.0, rtol=1e-12)
    _close(call.vega, put.vega, atol=0.0, rtol=1e-12)
    # theta_C - theta_P = -d/dT (S - K e^{-rT}) = -r K e^{-rT}
    _close(
        call.theta - put.theta, -c.r * c.K * math.exp(-c.r * c.T), atol=1e-9 * (c.S + c.K), rtol=0
    )


@SETTINGS
@given(cases())
def test_put_call_parity_black76(c: Case) -> None:
    f = c.S  # read S as the forward
    call = black76(f, c.K, c.T, c.r, c.sigma, True)
    put = black76(f, c.K, c.T, c.r, c.sigma, False)
    df = math.exp(-c.r * c.T)
    _close(call.price - put.price, df * (f - c.K), atol=1e-9 * (f + c.K))
    _close(call.delta - put.delta, df, atol=1e-12)
    _close(call.gamma, put.gamma, atol=0.0, rtol=1e-12)
    _close(call.vega, put.vega, atol=0.0, rtol=1e-12)


@SETTINGS
@given(cases(), st.booleans())
def test_black76_on_the_forward_is_black_scholes(c: Case, is_call: bool) -> None:
    """With F = S e^{rT}: same price and vega; delta and gamma scale by dF/dS = e^{rT}."""
    growth = math.exp(c.r * c.T)
    bs = _bs(c, is_call)
    b76 = black76(c.S * growth, c.K, c.T, c.r, c.sigma, is_call)
    _close(b76.price, bs.price, atol=1e-9 * (c.S + c.K), rtol=1e-9)
    _close(b76.delta * growth, bs.delta, atol=1e-12, rtol=1e-9)
    _close(b76.gamma * growth * growth, bs.gamma, atol=1e-12 / (c.S * _stddev(c)), rtol=1e-9)
    _close(b76.vega, bs.vega, atol=1e-12 * c.S, rtol=1e-9)


@SETTINGS
@given(cases())
def test_delta_bounds(c: Case) -> None:
    call, put = _bs(c, True), _bs(c, False)
    assert 0.0 <= call.delta <= 1.0
    assert -1.0 <= put.delta <= 0.0
    df = math.exp(-c.r * c.T) * (1.0 + 1e-15)  # e^{-rT}, give or take an ulp
    f_call = black76(c.S, c.K, c.T, c.r, c.sigma, True)
    f_put = black76(c.S, c.K, c.T, c.r, c.sigma, False)
    assert 0.0 <= f_call.delta <= df
    assert -df <= f_put.delta <= 0.0


@SETTINGS
@given(cases(), st.booleans())
def test_price_bounds(c: Case, is_call: bool) -> None:
    g = _bs(c, is_call)
    kdf = c.K * math.exp(-c.r * c.T)
    tol = 1e-9 * (c.S + c.K)
    if is_call:
        assert max(c.S - kdf, 0.0) - tol <= g.price <= c.S + tol
    else:
        assert max(kdf - c.S, 0.0) - tol <= g.price <= kdf + tol


@SETTINGS
@given(cases(), st.booleans())
def test_delta_is_the_finite_difference_of_price(c: Case, is_call: bool) -> None:
    h = 1e-4 * c.S * _stddev(c)  # the natural scale of S is S * sigma * sqrt(T)
    fd = (_bs(c, is_call, dS=h).price - _bs(c, is_call, dS=-h).price) / (2.0 * h)
    _close(_bs(c, is_call).delta, fd, atol=1e-6, rtol=1e-6)


@SETTINGS
@given(cases(), st.booleans())
def test_gamma_is_nonnegative_and_the_finite_difference_of_delta(c: Case, is_call: bool) -> None:
    g = _bs(c, is_call)
    assert g.gamma >= 0.0
    h = 1e-4 * c.S * _stddev(c)
    fd = (_bs(c, is_call, dS=h).delta - _bs(c, is_call, dS=-h).delta) / (2.0 * h)
    _close(g.gamma, fd, atol=1e-6 / (c.S * _stddev(c)), rtol=1e-6)


@SETTINGS
@given(cases(), st.booleans())
def test_vega_is_nonnegative_and_the_finite_difference_in_sigma(c: Case, is_call: bool) -> None:
    g = _bs(c, is_call)
    assert g.vega >= 0.0
    h = 1e-5 * c.sigma
    fd = (_bs(c, is_call, dsigma=h).price - _bs(c, is_call, dsigma=-h).price) / (2.0 * h)
    _close(g.vega, fd, atol=1e-5 * c.S * math.sqrt(c.T), rtol=1e-6)


@SETTINGS
@given(cases(), st.booleans())
def test_theta_is_minus_the_finite_difference_in_time(c: Case, is_call: bool) -> None:
    g = _bs(c, is_call)
    h = 1e-5 * c.T
    fd = -(_bs(c, is_call, dT=h).price - _bs(c, is_call, dT=-h).price) / (2.0 * h)
    scale = c.S * c.sigma / math.sqrt(c.T) + abs(c.r) * c.K
    _close(g.theta, fd, atol=1e-5 * scale, rtol=1e-6)


@SETTINGS
@given(cases(), st.booleans())
def test_black76_greeks_are_finite_differences(c: Case, is_call: bool) -> None:
    def b76(df_: float = 0.0, ds: float = 0.0) -> Greeks:
        return black76(c.S + df_, c.K, c.T, c.r, c.sigma + ds, is_call)

    g = b76()
    h = 1e-4 * c.S * _stddev(c)
    _close(g.delta, (b76(h).price - b76(-h).price) / (2 * h), atol=1e-6, rtol=1e-6)
    gamma_fd = (b76(h).delta - b76(-h).delta) / (2 * h)
    _close(g.gamma, gamma_fd, atol=1e-6 / (c.S * _stddev(c)), rtol=1e-6)
    hs = 1e-5 * c.sigma
    vega_fd = (b76(ds=hs).price - b76(ds=-hs).price) / (2 * hs)
    _close(g.vega, vega_fd, atol=1e-5 * c.S * math.sqrt(c.T), rtol=1e-6)
    assert g.gamma >= 0.0
    assert g.vega >= 0.0


def _ncdf(x: float) -> float:
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def _scalar_reference(c: Case, is_call: bool) -> tuple[float, float, float, float, float]:
    """Textbook Black-Scholes with the math module, written independently of the module."""
    sq = math.sqrt(c.T)
    d1 = (math.log(c.S / c.K) + (c.r + 0.5 * c.sigma**2) * c.T) / (c.sigma * sq)
    d2 = d1 - c.sigma * sq
    pdf = math.exp(-0.5 * d1 * d1) / math.sqrt(2.0 * math.pi)
    kdf = c.K * math.exp(-c.r * c.T)
    gamma = pdf / (c.S * c.sigma * sq)
    vega = c.S * pdf * sq
    decay = -c.S * pdf * c.sigma / (2.0 * sq)
    if is_call:
        price = c.S * _ncdf(d1) - kdf * _ncdf(d2)
        return price, _ncdf(d1), gamma, vega, decay - c.r * kdf * _ncdf(d2)
    price = kdf * _ncdf(-d2) - c.S * _ncdf(-d1)
    return price, _ncdf(d1) - 1.0, gamma, vega, decay + c.r * kdf * _ncdf(-d2)


@SETTINGS
@given(st.lists(st.tuples(cases(), st.booleans()), min_size=1, max_size=40))
def test_vectorized_equals_elementwise(rows: list[tuple[Case, bool]]) -> None:
    cs = [c for c, _ in rows]
    calls = np.array([k for _, k in rows], dtype=bool)

    def col(name: str) -> FloatArray:
        return np.array([getattr(c, name) for c in cs], dtype=np.float64)

    for model in (black_scholes, black76):
        vec = model(col("S"), col("K"), col("T"), col("r"), col("sigma"), calls)
        for f in dataclasses.fields(Greeks):
            assert getattr(vec, f.name).shape == (len(rows),)
        for i, (c, is_call) in enumerate(rows):
            one = model(c.S, c.K, c.T, c.r, c.sigma, is_call)
            money, v = c.S + c.K, _stddev(c)
            _close(vec.price[i], one.price, atol=1e-12 * money, rtol=1e-12)
            _close(vec.delta[i], one.delta, atol=1e-14, rtol=1e-12)
            _close(vec.gamma[i], one.gamma, atol=1e-14 / (c.S * v), rtol=1e-12)
            _close(vec.vega[i], one.vega, atol=1e-14 * c.S, rtol=1e-12)
            _close(vec.theta[i], one.theta, atol=1e-12 * money / v, rtol=1e-12)

    vec = black_scholes(col("S"), col("K"), col("T"), col("r"), col("sigma"), calls)
    for i, (c, is_call) in enumerate(rows):
        price, delta, gamma, vega, theta = _scalar_reference(c, is_call)
        money, v = c.S + c.K, _stddev(c)
        _close(vec.price[i], price, atol=1e-10 * money, rtol=1e-9)
        _close(vec.delta[i], delta, atol=1e-12, rtol=1e-9)
        _close(vec.gamma[i], gamma, atol=1e-12 / (c.S * v), rtol=1e-9)
        _close(vec.vega[i], vega, atol=1e-12 * c.S, rtol=1e-9)
        _close(vec.theta[i], theta, atol=1e-10 * money / v, rtol=1e-9)


def test_broadcasting_shapes() -> None:
    strikes = np.array([[80.0], [100.0], [120.0]])  # (3, 1)
    expiries = np.array([0.1, 0.5, 1.0, 2.0])  # (4,)
    g = black_scholes(100.0, strikes, expiries, 0.01, 0.6, True)
    for f in dataclasses.fields(Greeks):
        assert getattr(g, f.name).shape == (3, 4)
        assert getattr(g, f.name).dtype == np.float64
    one = black_scholes(100.0, 120.0, 2.0, 0.01, 0.6, True)
    assert one.price.shape == ()
    assert float(g.price[2, 3]) == pytest.approx(float(one.price), rel=1e-12)
    mixed = black_scholes(100.0, 100.0, 1.0, 0.0, 0.5, [True, False])
    assert mixed.delta[0] > 0 > mixed.delta[1]


def test_greeks_is_frozen() -> None:
    g = black_scholes(100.0, 100.0, 1.0, 0.0, 0.5, True)
    with pytest.raises(dataclasses.FrozenInstanceError):
        g.price = np.zeros(())  # type: ignore[misc]


@pytest.mark.parametrize("model", [black_scholes, black76])
@pytest.mark.parametrize(("x", "k"), [(0.0, 100.0), (-1.0, 100.0), (100.0, 0.0), (100.0, -5.0)])
def test_nonpositive_prices_are_rejected(model: Any, x: float, k: float) -> None:
    with pytest.raises(ValueError):
        model([100.0, x], k, 1.0, 0.0, 0.5, True)


# --------------------------------------------------------------------------------------------
# Coin-settled (inverse) options: premium-adjusted delta
# --------------------------------------------------------------------------------------------


@SETTINGS
@given(cases(), st.booleans())
def test_premium_adjusted_delta(c: Case, is_call: bool) -> None:
    g = _bs(c, is_call)
    pa = premium_adjusted_delta(g, c.S)
    assert float(pa) == float(g.delta - g.price / c.S)
    assert float(coin_settled_delta(c.S, c.K, c.T, c.r, c.sigma, is_call)) == float(pa)
    assert pa <= g.delta
    if is_call and float(g.price) / c.S > 1e-15:
        assert pa < g.delta
    # Closed forms: call K e^{-rT} N(d2) / S in [0, delta]; put -K e^{-rT} N(-d2) / S.
    v = _stddev(c)
    d2 = (math.log(c.S / c.K) + (c.r - 0.5 * c.sigma**2) * c.T) / v
    kdf_over_s = c.K * math.exp(-c.r * c.T) / c.S
    closed = kdf_over_s * _ncdf(d2) if is_call else -kdf_over_s * _ncdf(-d2)
    _close(pa, closed, atol=1e-9 * (1.0 + kdf_over_s), rtol=1e-9)
    if is_call:
        assert pa >= -1e-12


@SETTINGS
@given(cases(), st.booleans())
def test_premium_adjusted_gamma_is_the_finite_difference_of_pa_delta(
    c: Case, is_call: bool
) -> None:
    g = _bs(c, is_call)
    h = 1e-4 * c.S * _stddev(c)

    def pa(s: float) -> float:
        return float(coin_settled_delta(s, c.K, c.T, c.r, c.sigma, is_call))

    fd = (pa(c.S + h) - pa(c.S - h)) / (2.0 * h)
    want = g.gamma - g.delta / c.S + g.price / c.S**2
    _close(premium_adjusted_gamma(g, c.S), want, atol=1e-12 / c.S, rtol=1e-12)
    scale = 1.0 / (c.S * _stddev(c)) + (1.0 + c.K / c.S) / c.S
    _close(premium_adjusted_gamma(g, c.S), fd, atol=1e-6 * scale, rtol=1e-6)


def test_premium_adjusted_delta_vectorized() -> None:
    s = np.array([30_000.0, 60_000.0, 90_000.0])
    g = black_scholes(s, 60_000.0, 0.25, 0.0, 0.6, np.array([True, True, False]))
    pa = premium_adjusted_delta(g, s)
    np.testing.assert_array_equal(pa, g.delta - g.price / s)
    assert pa.shape == (3,)
    assert np.all(pa <= g.delta)
    # expired options: the premium is intrinsic, the adjustment still applies
    exp = black_scholes(s, 60_000.0, 0.0, 0.0, 0.6, True)
    np.testing.assert_allclose(premium_adjusted_delta(exp, s), [0.0, 0.0, 60_000.0 / 90_000.0])


# --------------------------------------------------------------------------------------------
# Degenerate inputs: expired, no volatility, tiny T
# --------------------------------------------------------------------------------------------


def _all_finite(g: Greeks) -> None:
    for f in dataclasses.fields(Greeks):
        a = getattr(g, f.name)
        assert np.all(np.isfinite(a)), f"{f.name} not finite: {a}"


@pytest.mark.parametrize("t", [0.0, -1e-9, -1.0])
def test_expired_is_intrinsic(t: float) -> None:
    s = np.array([90.0, 100.0, 110.0, 90.0, 100.0, 110.0])
    is_call = np.array([True, True, True, False, False, False])
    for model in (black_scholes, black76):
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            g = model(s, 100.0, t, 0.05, 0.8, is_call)
        np.testing.assert_array_equal(g.price, [0.0, 0.0, 10.0, 10.0, 0.0, 0.0])
        np.testing.assert_array_equal(g.delta, [0.0, 0.0, 1.0, -1.0, 0.0, 0.0])
        np.testing.assert_array_equal(g.gamma, np.zeros(6))
        np.testing.assert_array_equal(g.vega, np.zeros(6))
        np.testing.assert_array_equal(g.theta, np.zeros(6))


@pytest.mark.parametrize("sigma", [0.0, -0.3])
def test_zero_vol_black_scholes_is_discounted_forward_intrinsic(sigma: float) -> None:
    r, t, k = 0.05, 0.5, 100.0
    kdf = k * math.exp(-r * t)  # 97.53
    s = np.array([90.0, kdf, 99.0, 110.0, 90.0, kdf, 99.0, 110.0])
    is_call = np.array([True] * 4 + [False] * 4)
    with np.errstate(divide="raise", over="raise", invalid="raise"):
        g = black_scholes(s, k, t, r, sigma, is_call)
    want_price = np.where(is_call, np.maximum(s - kdf, 0.0), np.maximum(kdf - s, 0.0))
    np.testing.assert_allclose(g.price, want_price, atol=1e-12)
    np.testing.assert_array_equal(g.delta, [0, 0, 1, 1, -1, 0, 0, 0])
    np.testing.assert_array_equal(g.gamma, np.zeros(8))
    np.testing.assert_array_equal(g.vega, np.zeros(8))
    np.testing.assert_allclose(g.theta, [0, 0, -r * kdf, -r * kdf, r * kdf, 0, 0, 0], atol=1e-12)


def test_zero_vol_black76_is_discounted_intrinsic() -> None:
    r, t = 0.05, 0.5
    df = math.exp(-r * t)
    f = np.array([90.0, 100.0, 110.0, 90.0, 100.0, 110.0])
    is_call = np.array([True, True, True, False, False, False])
    g = black76(f, 100.0, t, r, 0.0, is_call)
    np.testing.assert_allclose(g.price, df * np.array([0, 0, 10, 10, 0, 0]), atol=1e-12)
    np.testing.assert_allclose(g.delta, df * np.array([0, 0, 1, -1, 0, 0]), atol=1e-15)
    np.testing.assert_allclose(g.theta, r * g.price, atol=1e-15)
    assert not g.gamma.any()
    assert not g.vega.any()


@pytest.mark.parametrize("model", [black_scholes, black76])
@pytest.mark.parametrize("is_call", [True, False])
def test_zero_vol_is_the_small_vol_limit(model: Any, is_call: bool) -> None:
    """Away from the money the sigma -> 0 limit of price, delta and theta is the zero-vol rule."""
    s = np.array([80.0, 120.0])
    flat = model(s, 100.0, 0.5, 0.05, 0.0, is_call)
    small = model(s, 100.0, 0.5, 0.05, 1e-4, is_call)
    np.testing.assert_allclose(small.price, flat.price, atol=1e-9)
    np.testing.assert_allclose(small.delta, flat.delta, atol=1e-9)
    np.testing.assert_allclose(small.theta, flat.theta, atol=1e-9)


@pytest.mark.parametrize("t", [1e-6, 1e-12, 1e-20, 1e-300, 5e-324])
@pytest.mark.parametrize("model", [black_scholes, black76])
def test_tiny_expiry_is_finite(model: Any, t: float) -> None:
    s = np.array([99.0, 100.0, 101.0, 1e6, 1.0])
    for is_call in (True, False):
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            g = model(s, 100.0, t, 0.2, 3.0, is_call)
        _all_finite(g)
        sign = 1.0 if is_call else -1.0
        intrinsic = np.maximum(sign * (s - 100.0), 0.0)
        np.testing.assert_allclose(g.price, intrinsic, atol=100.0 * 3.0 * math.sqrt(t) + 1e-9)


@SETTINGS
@given(
    s=_finite(1.0, 1e6),
    moneyness=_finite(0.2, 5.0),
    t=st.floats(-1.0, 1e-4, allow_nan=False),
    r=_finite(-0.02, 0.2),
    sigma=st.floats(-1.0, 3.0, allow_nan=False),
    is_call=st.booleans(),
)
def test_degenerate_and_tiny_inputs_never_produce_nan(
    s: float, moneyness: float, t: float, r: float, sigma: float, is_call: bool
) -> None:
    # Black-76 deltas are bounded by e^{-rT}, above 1 for negative rates
    bound = max(1.0, math.exp(-r * max(t, 0.0))) * (1.0 + 1e-15)
    for model in (black_scholes, black76):
        with np.errstate(divide="raise", over="raise", invalid="raise"):
            g = model(s, s * moneyness, t, r, sigma, is_call)
        _all_finite(g)
        assert g.price >= 0.0
        assert g.gamma >= 0.0
        assert g.vega >= 0.0
        assert -bound <= g.delta <= bound
        _all_finite(
            Greeks(
                price=g.price,
                delta=premium_adjusted_delta(g, s),
                gamma=premium_adjusted_gamma(g, s),
                vega=g.vega,
                theta=g.theta,
            )
        )


# --------------------------------------------------------------------------------------------
# Time
# --------------------------------------------------------------------------------------------


def test_year_fraction() -> None:
    now = 1_700_000_000_000
    assert MS_PER_YEAR == 365.25 * 24 * 3600 * 1000
    assert year_fraction(now + int(MS_PER_YEAR), now) == 1.0
    assert year_fraction(now + 24 * 3600 * 1000, now) == pytest.approx(1.0 / 365.25, rel=1e-15)
    assert year_fraction(now, now) == 0.0
    assert year_fraction(now - 1, now) == 0.0
    assert isinstance(year_fraction(now + 1, now), float)
    expiries = np.array([now - 5, now, now + 3_600_000, now + int(MS_PER_YEAR)], dtype=np.int64)
    got = year_fractions(expiries, now)
    assert got.dtype == np.float64
    np.testing.assert_array_equal(got, [year_fraction(int(e), now) for e in expiries])
