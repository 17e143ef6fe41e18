"""Cross hedges through the real entry points: `hedgebot backtest` and run_path drive the
daemon's own hedger, executor and simulated exchange on a correlated two-asset market
(tests/backtest_configs/cross_pair.toml: SOL spot hedged with the BTC perp by beta)."""

from __future__ import annotations

import json
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

from bot.backtest.path import DAY_MS, PathSpec, run_path
from bot.config import Settings, load_settings
from tests import tomlw
from tests.helpers import ROOT, clean_env

PAIR = ROOT / "tests" / "backtest_configs" / "cross_pair.toml"
START_MS = 1_767_225_600_000  # 2026-01-01T00:00Z, the backtest's start


def pair_config(tmp: Path, sim_corr: dict[str, Any], cross: dict[str, Any]) -> Path:
    doc = tomllib.loads(PAIR.read_text())
    doc["sim"]["correlation"].update(sim_corr)
    doc["hedge"]["SOL"]["cross"].update(cross)
    path = tmp / "pair.toml"
    path.write_text(tomlw.dumps(doc))
    return path


def events_of(settings: Settings, tmp: Path, days: float, seed: int = 3) -> list[dict[str, Any]]:
    out = tmp / "events.jsonl"
    run_path(settings, PathSpec(seed, days, 60_000, START_MS), events=out)
    return [json.loads(line) for line in out.read_text().splitlines()]


def test_backtest_reports_variance_reduction_near_rho_squared(tmp_path: Path) -> None:
    cfg = pair_config(tmp_path, {"matrix": [[1.0, 0.95], [0.95, 1.0]]}, {})
    out = tmp_path / "out"
    args = ["backtest", "--config", str(cfg), "--days", "1", "--paths", "2", "--jobs", "2"]
    r = subprocess.run(
        [sys.executable, "-m", "bot", *args, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    sol = report["cross_hedges"]["SOL"]
    # 2 paths x (1440 ticks - 120 of warmup - the first): the ticks a cross hedge was held
    assert sol["ticks"] == 2 * (1440 - 121)
    assert abs(sol["variance_reduction"] - 0.95**2) <= 0.03, sol
    assert "cross hedge SOL   variance reduction" in r.stdout
    # the BTC perp's P&L is in the delta part (BTC's own book), not left in the residual
    parts = report["summary"]["attribution_usd"]
    assert abs(parts["residual"]) <= 0.01 * abs(parts["delta"]) + 1.0, parts
    for p in report["per_path"]:
        assert p["cross"]["SOL"]["variance_reduction"] > 0.85


def breakdown_events(tmp: Path, on_breakdown: str) -> tuple[list[dict[str, Any]], int]:
    """A day on rho 0.9 that breaks to 0 at 12:00; a 60-sample window, 40 needed to trade."""
    cross = {"window": 60, "min_samples": 40, "on_breakdown": on_breakdown}
    corr = {"matrix": [[1.0, 0.9], [0.9, 1.0]], "break_after_days": 0.5, "break_rho": 0.0}
    settings = load_settings(pair_config(tmp, corr, cross))
    return events_of(settings, tmp, days=1.0), START_MS + DAY_MS // 2


def test_breakdown_alerts_within_the_window_and_halt_freezes_the_proxy_hedge(
    tmp_path: Path,
) -> None:
    ev, break_ms = breakdown_events(tmp_path, "halt")
    ready = [e for e in ev if e["event"] == "cross.ready"]
    alerts = [e for e in ev if e["event"] == "cross.breakdown"]
    orders = [e for e in ev if e["event"] == "order.sent"]
    assert len(ready) == 1 and ready[0]["samples"] == 40
    # No order is sized from a beta with less than min_samples of history.
    assert orders and min(o["ts_ms"] for o in orders) >= ready[0]["ts_ms"]
    assert all(o["symbol"] == "BTC/USDT:USDT" for o in orders)
    # The alert fires within the window's 60 observations (one a minute) after the break.
    assert len(alerts) == 1
    alert = alerts[0]
    assert alert["kind"] == "alert" and alert["response"] == "halt"
    assert break_ms < alert["ts_ms"] <= break_ms + 60 * 60_000
    assert alert["corr"] < 0.5 == alert["corr_floor"]
    # Halt: the proxy's hedge is frozen, so nothing trades after the breakdown.
    assert not [o for o in orders if o["ts_ms"] > alert["ts_ms"]]
    sol = [e for e in ev if e["event"] == "hedge.decision" and e["underlying"] == "SOL"]
    assert sol[-1]["reason"] == "cross_breakdown" and not sol[-1]["trade"]
    assert sol[-1]["cross"]["status"] == "breakdown"
    btc = [e for e in ev if e["event"] == "hedge.decision" and e["underlying"] == "BTC"]
    assert all("SOL" in e["cross"]["carries_coin"] for e in btc if e["trade"])


def test_breakdown_direct_hedges_with_the_own_instrument(tmp_path: Path) -> None:
    ev, _ = breakdown_events(tmp_path, "direct")
    alert = next(e for e in ev if e["event"] == "cross.breakdown")
    after = [e for e in ev if e["event"] == "order.sent" and e["ts_ms"] >= alert["ts_ms"]]
    # SOL now sells its own perp, and BTC buys back the hedge that carried SOL.
    assert {o["symbol"] for o in after} == {"SOL/USDT:USDT", "BTC/USDT:USDT"}
    sol = next(o for o in after if o["symbol"] == "SOL/USDT:USDT")
    assert sol["side"] == "sell"


def test_breakdown_keep_goes_on_with_the_last_good_beta(tmp_path: Path) -> None:
    ev, _ = breakdown_events(tmp_path, "keep")
    alert = next(e for e in ev if e["event"] == "cross.breakdown")
    after = [e for e in ev if e["event"] == "hedge.decision" and e["ts_ms"] >= alert["ts_ms"]]
    btc = [e for e in after if e["underlying"] == "BTC" and e["trade"]]
    assert btc, "the proxy goes on hedging SOL's moving delta"
    sol = [e for e in after if e["underlying"] == "SOL"]
    assert sol[0]["reason"] == "cross_breakdown"
    c = sol[0]["cross"]
    # the beta in use is the last that held, not the broken estimate
    assert c["beta_used"]["BTC"] > c["beta"]["BTC"] and c["corr"] < 0.5


def test_the_example_config_hedges_two_underlyings_with_two_proxies(tmp_path: Path) -> None:
    """config/cross.toml: SOL and AVAX spot on BTC and ETH perps, the multivariate regression."""
    out = tmp_path / "out"
    args = ["backtest", "--config", str(ROOT / "config" / "cross.toml"), "--days", "0.25"]
    args += ["--paths", "1", "--jobs", "1", "--tick-ms", "60000", "--events", "--out", str(out)]
    r = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=600,
    )
    assert r.returncode == 0, r.stderr
    ev = [json.loads(x) for x in next(out.glob("events-*.jsonl")).read_text().splitlines()]
    ready = {e["underlying"]: e for e in ev if e["event"] == "cross.ready"}
    assert set(ready) == {"SOL", "AVAX"}
    for e in ready.values():
        assert set(e["beta"]) == {"BTC", "ETH"} and e["samples"] == 120
        assert e["corr"] > 0.7  # 0.75-0.8 against each proxy alone: R is higher
    trades = [e for e in ev if e["event"] == "hedge.decision" and e["trade"]]
    assert {e["underlying"] for e in trades} == {"BTC", "ETH"}
    for e in trades:
        carried = e["cross"]["carries_coin"]
        assert carried["SOL"] > 0 and carried["AVAX"] > 0
        assert e["ts_ms"] >= max(x["ts_ms"] for x in ready.values())
    report = json.loads((out / "report.json").read_text())
    assert set(report["cross_hedges"]) == {"AVAX", "SOL"}
