"""Cost-aware trigger policies through the backtest: the live hedger, executor and simulated
exchange on a virtual clock (bot/backtest/path.py), configured from TOML like an operator."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

from bot.backtest.path import PathSpec, run_path
from bot.config import Settings, load_settings
from tests.helpers import ROOT, clean_env

CONFIG = """
[engine]
stale_after_s = 600
[execution]
book_max_age_s = 600
max_cost_bps = 1000
cost_risk_ratio = 1000
[risk]
max_orders_per_minute = 60
[sim]
tick_ms = 60000
spread_bps = 2
taker_fee = 0.0005
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.9
[accounts.sim]
exchange = "sim"
{positions}
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
[hedge.BTC.policy]
{policy}
"""

WW = 'kind = "whalley_wilmott"\nrisk_aversion = 0.0001\nband_floor = 0.01\nband_cap = 5.0'


SHORT_CALLS = """[[positions]]
underlying = "BTC"
kind = "option"
option_type = "call"
strike = 60_000
expiry_days = 365
qty = -20"""


def settings(tmp: Path, policy: str, positions: str = SHORT_CALLS) -> Settings:
    path = tmp / "hedge.toml"
    path.write_text(CONFIG.format(policy=policy, positions=positions))
    return load_settings(path)


def decisions(tmp: Path, s: Settings, days: float = 1.0) -> list[dict[str, Any]]:
    events = tmp / "events.jsonl"
    spec = PathSpec(seed=3, days=days, tick_ms=60_000, start_ms=1_700_000_000_000)
    result = run_path(s, spec, events=events)
    assert result.orders > 0
    out = []
    for line in events.read_text().splitlines():
        e = json.loads(line)
        if e.get("event") == "hedge.decision":
            out.append(e)
    return out


def test_whalley_wilmott_trades_to_the_band_edge_and_its_band_follows_gamma(
    tmp_path: Path,
) -> None:
    seen = decisions(tmp_path, settings(tmp_path, WW))
    trades = [d for d in seen if d["trade"]]
    assert trades and all(d["policy"] == "whalley_wilmott" for d in seen)
    for d in trades:
        assert d["reason"] == "outside_band" and d["to"] == "edge"
        after = d["delta"] + d["gap_coin"]  # unit coin: where the trade leaves the delta
        assert abs(after - d["target"]) == _approx(d["band"]), d
    # H^3 = 1.5 lambda S Gamma^2 / risk_aversion (r = 0): with the cost fixed (taker fee 5 bp,
    # half of a 2 bp spread), H^3 / (S Gamma^2) is the same number in every decision while the
    # band itself moves with the book's gamma and price.
    lam = 0.0005 + 0.0001
    for d in seen:
        if d["band"] not in (0.01, 5.0):
            ratio = d["band"] ** 3 / (d["price"] * d["gamma_coin"] ** 2)
            assert ratio == _approx(1.5 * lam / 0.0001, rel=0.02), d
    bands = {round(d["band"], 6) for d in seen}
    assert len(bands) > 3
    # realized or implied: the vol the policy saw is reported (here the option's IV)
    assert all(d["vol"] == _approx(0.9) for d in seen)


def test_a_book_with_no_gamma_uses_the_floor(tmp_path: Path) -> None:
    # One BTC of linear perp and no options: gamma 0, H = 0, so the band is the floor; the first
    # decision sells down to its edge.
    perp = '[[positions]]\nsymbol = "BTC/USDT:USDT"\nqty = 1'
    seen = decisions(tmp_path, settings(tmp_path, WW, perp), days=0.05)
    assert seen and all(d["band"] == 0.01 and d["gamma_coin"] == 0.0 for d in seen)
    first = seen[0]
    assert first["trade"] and first["delta"] == _approx(1.0)
    assert first["gap_coin"] == _approx(-0.99)
    # no options: the vol reported is the EWMA of realized returns, known after two ticks
    assert any(d["vol"] is not None and 0 < d["vol"] < 5 for d in seen[1:]), seen


def _approx(x: float, rel: float = 1e-6) -> Any:
    import pytest

    return pytest.approx(x, rel=rel, abs=1e-9 if not math.isnan(x) else None)


def test_zakamouline_runs_with_a_shifted_centre_and_trades_to_its_edges(tmp_path: Path) -> None:
    zak = 'kind = "zakamouline"\nrisk_aversion = 0.0001\nband_floor = 0.01\nband_cap = 5.0'
    seen = decisions(tmp_path, settings(tmp_path, zak))
    trades = [d for d in seen if d["trade"]]
    assert trades and all(d["policy"] == "zakamouline" for d in seen)
    for d in trades:
        assert abs(d["delta"] + d["gap_coin"] - d["target"]) == _approx(d["band"]), d
    # Short gamma: sigma_m > sigma, so the target is the options' delta at a higher vol; the
    # centre moves off 0 by -vanna x (sigma_m - sigma), a different amount as the book moves.
    centres = {round(d["target"], 9) for d in seen}
    assert 0.0 not in centres and len(centres) > 3
    assert all(0.01 < d["band"] < 5.0 for d in seen)


def test_hedgebot_backtest_runs_a_cost_aware_policy_with_modifiers(tmp_path: Path) -> None:
    """Through the real entry point: `python -m bot backtest` with a whalley_wilmott policy in
    USD, a debounce and a time fallback; the events carry the policy, its band and the vol."""
    policy = (
        WW.replace("band_floor = 0.01", "band_floor = 500").replace(
            "band_cap = 5.0", "band_cap = 1e6"
        )
        + "\ndebounce_s = 120\ntime_fallback_s = 3600"
    )
    cfg = tmp_path / "hedge.toml"
    cfg.write_text(
        CONFIG.format(policy=policy, positions=SHORT_CALLS).replace(
            'instrument = "BTC/USDT:USDT"', 'instrument = "BTC/USDT:USDT"\nunit = "usd"'
        )
    )
    out = tmp_path / "out"
    args = ["--config", str(cfg), "--days", "0.5", "--paths", "1", "--seed", "4"]
    r = subprocess.run(
        [sys.executable, "-m", "bot", "backtest", *args, "--out", str(out), "--events"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=300,
    )
    assert r.returncode == 0, r.stderr
    seen = [json.loads(line) for line in (out / "events-4.jsonl").read_text().splitlines()]
    decided = [e for e in seen if e.get("event") == "hedge.decision"]
    assert decided and all(d["policy"] == "whalley_wilmott" for d in decided)
    reasons = {d["reason"] for d in decided}
    assert "debounce" in reasons and "outside_band" in reasons
    for d in decided:
        assert d["unit"] == "usd" and d["vol"] == _approx(0.9)
    trades = [d for d in decided if d["trade"] and d["reason"] == "outside_band"]
    for d in trades:
        assert abs(d["delta"] + d["gap_coin"] * d["price"] - d["target"]) == _approx(d["band"])
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["orders"]["mean"] > 0
