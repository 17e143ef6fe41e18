"""The sweep's pure parts (grids, settings per combination, frontier, recommendation) and the
backtest's P&L attribution on a real path."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest

from bot.backtest import sweep
from bot.backtest.attribution import PARTS
from bot.backtest.cli import START_MS
from bot.backtest.path import PathSpec, run_path
from bot.backtest.series import Series
from bot.config import ConfigError, Settings, load_settings

CONFIG = """
bot_id = "lab"
[engine]
stale_after_s = 120
[risk]
max_order_contracts = 100
max_orders_per_minute = 60
[sim]
seed = 3
reject_rate = 0.0
[sim.underlyings.BTC]
price = 60_000.0
vol = {vol}
jump_intensity = {jumps}
jump_std = 0.03
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
option_type = "call"
strike = 60_000
expiry_days = 90
qty = -20
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
[hedge.BTC.policy]
kind = "band"
band = 0.5
"""


def settings(tmp_path: Path, vol: float = 0.6, jumps: float = 0.0) -> Settings:
    path = tmp_path / "lab.toml"
    path.write_text(CONFIG.format(vol=vol, jumps=jumps))
    return load_settings(path)


# ---- grids ----------------------------------------------------------------------------------


def test_a_range_gives_n_values_ends_included() -> None:
    path, values = sweep.parse_grid("hedge.BTC.policy.band=0.1:1.0:10")
    assert path == "hedge.BTC.policy.band"
    assert values == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0]
    assert sweep.parse_grid("x.y=2:2:1") == ("x.y", [2.0])
    assert sweep.parse_grid("x.y=1:0:3") == ("x.y", [1.0, 0.5, 0.0])  # downwards is a range too


def test_a_list_keeps_types() -> None:
    assert sweep.parse_grid("hedge.BTC.policy.kind=band") == ("hedge.BTC.policy.kind", ["band"])
    _, values = sweep.parse_grid("a.b=1, 2.5 ,true,edge,'7'")
    assert values == [1, 2.5, True, "edge", "7"]
    # An instrument has a colon and no number: a value, not a range.
    assert sweep.parse_grid("h.instrument=BTC/USDT:USDT") == ("h.instrument", ["BTC/USDT:USDT"])
    _, values = sweep.parse_grid("h.instrument=BTC/USDT:USDT, BTC/USDC:USDC")
    assert values == ["BTC/USDT:USDT", "BTC/USDC:USDC"]


@pytest.mark.parametrize(
    ("spec", "words"),
    [
        ("hedge.BTC.policy.band", "path=a:b:n"),
        ("=1,2", "path=a:b:n"),
        ("hedge..band=1", "empty part"),
        ("a.b=0.1:1", "three parts"),
        ("a.b=x:1:3", "must be numbers"),
        ("a.b=0.1:1:2.5", "integer (got '2.5')"),
        ("a.b=0.1:1:0", "n must be >= 1 (got 0)"),
        ("a.b=0.1:1:1", "needs a == b"),
        ("a.b=0:inf:3", "finite"),
        ("a.b=1e308:-1e308:3", "the range's values must be finite"),
        ("a.b=0.1:1:10001", "n must be <= 10000 (got 10001)"),
        ("a.b=1,,2", "empty value"),
        ("a.b=1,1", "listed twice"),
    ],
)
def test_bad_grids_are_refused_naming_the_grid_and_rule(spec: str, words: str) -> None:
    with pytest.raises(sweep.GridError) as e:
        sweep.parse_grid(spec)
    assert repr(spec) in str(e.value) and words in str(e.value)


def test_combinations_are_the_product_in_grid_order() -> None:
    combos = sweep.combinations([("a.x", [1, 2]), ("a.y", ["p", "q"])])
    assert combos == [
        {"a.x": 1, "a.y": "p"},
        {"a.x": 1, "a.y": "q"},
        {"a.x": 2, "a.y": "p"},
        {"a.x": 2, "a.y": "q"},
    ]
    with pytest.raises(sweep.GridError, match="given twice"):
        sweep.combinations([("a.x", [1]), ("a.x", [2])])
    with pytest.raises(sweep.GridError, match="10001 combinations; the grids' product must be"):
        sweep.combinations([("a.x", list(range(73))), ("a.y", list(range(137)))])
    assert sweep.label({"hedge.BTC.policy.band": 0.2, "hedge.BTC.policy.to": "edge"}) == (
        "band=0.2 to=edge"
    )


# ---- settings per combination -------------------------------------------------------------


def test_a_combination_is_validated_as_the_config_file(tmp_path: Path) -> None:
    base = settings(tmp_path)
    s = sweep.apply(
        base, {"hedge.BTC.policy.band": 0.25, "execution.max_slippage_bps": 5}, START_MS
    )
    assert s.hedge["BTC"].policy.model_dump()["band"] == 0.25
    assert s.execution.max_slippage_bps == 5
    with pytest.raises(ConfigError) as e:
        sweep.apply(base, {"hedge.BTC.policy.band": -1}, START_MS)
    text = e.value.render()
    assert "hedge.BTC.policy.band" in text and "-1" in text and "greater than 0" in text
    with pytest.raises(ConfigError, match="no such setting"):
        sweep.apply(base, {"hedge.BTC.policy.width": 1}, START_MS)
    # Valid as a value, but the simulated exchange lists no such instrument: as the file is.
    with pytest.raises(ConfigError, match="not listed by the simulated exchange") as e:
        sweep.apply(base, {"hedge.BTC.instrument": "FOO/USDT:USDT"}, START_MS)
    assert "hedge.BTC.instrument" in e.value.render() and "FOO/USDT:USDT" in e.value.render()


def test_a_grid_on_the_policy_kind_starts_that_policy_afresh(tmp_path: Path) -> None:
    base = settings(tmp_path)
    s = sweep.apply(base, {"hedge.BTC.policy.kind": "band", "hedge.BTC.policy.band_lower": 0.2,
                           "hedge.BTC.policy.band_upper": 0.4}, START_MS)  # fmt: skip
    policy = s.hedge["BTC"].policy.model_dump()
    assert policy["band"] is None and policy["band_lower"] == 0.2  # the file's band is gone
    # The kind alone lacks its parameters: refused, saying what is missing.
    with pytest.raises(ConfigError, match="give band, or both band_lower and band_upper"):
        sweep.apply(base, {"hedge.BTC.policy.kind": "band"}, START_MS)
    with pytest.raises(ConfigError, match="unknown policy kind"):
        sweep.apply(base, {"hedge.BTC.policy.kind": "nope", "hedge.BTC.policy.band": 1}, START_MS)


def test_toml_lines_paste_into_a_config(tmp_path: Path) -> None:
    import tomllib

    combo = {"hedge.BTC.policy.kind": "band", "hedge.BTC.policy.band": 0.3, "risk.x": True}
    lines = sweep.toml_lines(combo)
    assert lines[0] == "[hedge.BTC.policy]"
    doc = tomllib.loads("\n".join(lines))
    assert doc == {"hedge": {"BTC": {"policy": {"kind": "band", "band": 0.3}}}, "risk": {"x": True}}


# ---- frontier and recommendation ----------------------------------------------------------


def row(name: str, cost: float, std: float) -> dict[str, Any]:
    return {"label": name, "settings": {"k": name}, "cost_mean_usd": cost, "pnl_std_usd": std}


def hand_table() -> list[dict[str, Any]]:
    return [
        row("tight", 100.0, 10.0),  # frontier: the least risk
        row("mid", 60.0, 30.0),  # frontier
        row("worse", 70.0, 35.0),  # dominated by mid on both
        row("same-risk", 65.0, 30.0),  # as risky as mid and dearer: dominated
        row("loose", 20.0, 80.0),  # frontier: the cheapest
        row("wide", 20.0, 90.0),  # as cheap as loose and riskier: dominated
    ]


def test_the_frontier_is_the_non_dominated_settings() -> None:
    rows = hand_table()
    sweep.mark_frontier(rows)
    assert [r["label"] for r in rows if r["frontier"]] == ["tight", "mid", "loose"]
    assert not any(r["frontier_cvar"] for r in rows)  # no CVaR in this table: nothing marked
    for r, loss in zip(rows, [50.0, 10.0, 5.0, 60.0, 90.0, 80.0], strict=True):
        r["pnl_cvar_loss_usd"] = loss
    sweep.mark_frontier(rows)
    assert [r["label"] for r in rows if r["frontier_cvar"]] == ["mid", "worse", "wide"]


def test_the_frontier_std_at_a_cost_interpolates_between_frontier_points() -> None:
    rows = [
        row("a", 100.0, 50.0),
        row("b", 300.0, 10.0),
        row("c", 200.0, 60.0),
        row("d", 50.0, 90.0),
    ]
    sweep.mark_frontier(rows)  # (200, 60) is dominated by (100, 50): left out
    assert sweep.frontier_std_at(rows, 200.0) == pytest.approx(30.0)  # halfway 50 -> 10
    assert sweep.frontier_std_at(rows, 75.0) == pytest.approx(70.0)
    assert sweep.frontier_std_at(rows, 300.0) == 10.0
    assert math.isnan(sweep.frontier_std_at(rows, 301.0))
    assert math.isnan(sweep.frontier_std_at(rows, 49.0))
    assert math.isnan(sweep.frontier_std_at([], 100.0))


def test_the_recommendation_is_the_cheapest_within_the_budget() -> None:
    rows = hand_table()
    assert sweep.recommend(rows, 30.0) is rows[1]  # mid: 60 within std 30
    assert [r["label"] for r in rows if r["recommended"]] == ["mid"]
    assert sweep.recommend(rows, 29.9)["label"] == "tight"  # type: ignore[index]
    assert sweep.recommend(rows, 1000.0)["label"] == "loose"  # type: ignore[index]  # tie: std
    assert sweep.recommend(rows, 5.0) is None
    assert not any(r["recommended"] for r in rows)


def test_the_table_keeps_only_settings_with_every_path() -> None:
    combos = [{"a": 1}, {"a": 2}]
    p = sweep.PathRow
    done = {
        (sweep.key(combos[0]), 1): p(10.0, 3.0, 1.0, 2),
        (sweep.key(combos[0]), 2): p(-10.0, 5.0, 1.0, 4),
        (sweep.key(combos[1]), 1): p(0.0, 1.0, 0.0, 1),  # path 2 missing
    }
    rows = sweep.table(combos, done, [1, 2])
    assert len(rows) == 1
    r = rows[0]
    assert r["cost_mean_usd"] == 5.0 and r["pnl_mean_usd"] == 0.0 and r["orders_mean"] == 3
    assert r["pnl_std_usd"] == pytest.approx(math.sqrt(200.0))
    assert r["pnl_cvar_5_usd"] == -10.0 and r["frontier"] and not r["recommended"]


# ---- attribution and series ---------------------------------------------------------------


def test_attribution_adds_up_and_explains_a_smooth_market(tmp_path: Path) -> None:
    spec = PathSpec(seed=3, days=0.25, tick_ms=60_000, start_ms=1_767_225_600_000)
    smooth = settings(tmp_path, vol=0.5, jumps=0.0)
    r = run_path(smooth, spec)
    bare = run_path(smooth, spec, detail=False)  # attribution only reads: the same run
    assert (bare.pnl_usd, bare.orders, bare.fees_usd) == (r.pnl_usd, r.orders, r.fees_usd)
    assert bare.attribution.delta == 0.0 and len(bare.series) == 0
    a = r.attribution.as_dict()
    assert set(a) == set(PARTS)
    assert sum(a.values()) == pytest.approx(r.pnl_usd, abs=1e-6)
    assert a["fees"] == -r.fees_usd < 0 and a["slippage"] == -r.slippage_usd
    assert a["funding"] == 0.0 and a["vega"] == 0.0  # the simulated IV is constant
    assert a["theta"] > 0 and a["gamma"] < 0  # short options: paid to wait, lose on moves
    gross = sum(abs(v) for k, v in a.items() if k != "residual")
    assert abs(a["residual"]) < 0.005 * gross, a


def test_the_series_is_bounded_whatever_the_path_length() -> None:
    s = Series.for_ticks(1_000_000, max_points=2_000)
    assert s.stride == 500
    for tick in range(1, 1_000_001):
        if s.wants(tick):
            s.add(tick, 1.0, 0.0, 0.0, 0.1, 0.1, 0.0)
    assert len(s) == 2_000 and s.lower[0] == -0.1 and s.upper[0] == 0.1
    assert Series.for_ticks(100).stride == 1


def test_the_daemon_and_the_cli_do_not_load_the_lab_packages() -> None:
    import subprocess
    import sys

    code = (
        "import sys, bot.daemon, bot.cli, bot.backtest.plots, bot.backtest.sweep_run;"
        "bot.cli.build_parser();"
        "print(sorted(m for m in ('matplotlib', 'distributed', 'dask', 'pyarrow') "
        "if m in sys.modules))"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "[]"


def test_a_config_error_crosses_a_process_boundary_whole() -> None:
    """Raised in a sweep's or a backtest's worker, it reaches the parent with its problems, not
    as a broken process pool."""
    import pickle

    e = ConfigError("set hedge.BTC.instrument", [("hedge.BTC.instrument", "'X'", "not listed")])
    back = pickle.loads(pickle.dumps(e))
    assert isinstance(back, ConfigError) and back.problems == e.problems
    assert back.render() == "set hedge.BTC.instrument: hedge.BTC.instrument: not listed (got 'X')"
