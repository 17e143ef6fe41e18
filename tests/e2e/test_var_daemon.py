"""The VaR limit and the risk numbers through `python -m bot run --clock virtual`: a short,
delta-hedged call book (gamma left over) on the simulated exchange, with a tiny var_limit_usd."""

from __future__ import annotations

from pathlib import Path

from tests.helpers import named, run_bot

CONFIG = """
bot_id = "var-e2e"
[journal]
path = "{journal}"
[risk]
var_limit_usd = 1.0
var_sample_s = 30
var_window = 40
var_min_samples = {min_samples}
scenario_spot_pct = [-10, 0, 10]
scenario_iv_points = [-5, 0, 5]
[sim]
seed = 3
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.8
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "linear"
option_type = "call"
strike = 60_000
expiry_days = 30
qty = -10
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
policy = {{ kind = "band", band = 0.5 }}
"""


def run(tmp_path: Path, min_samples: int) -> list[dict[str, object]]:
    cfg = tmp_path / "var.toml"
    cfg.write_text(CONFIG.format(journal=tmp_path / "j.sqlite", min_samples=min_samples))
    args = ["run", "--config", str(cfg), "--clock", "virtual", "--duration", "900"]
    code, events, err = run_bot([*args, "--log-format", "json"], timeout=120)
    assert code == 0, err
    return events


def test_var_above_the_limit_turns_trading_reducing_only(tmp_path: Path) -> None:
    events = run(tmp_path, min_samples=10)
    states = named(events, "trading.state")
    assert [(e["state"], e["reason"]) for e in states] == [("reducing_only", "var_limit")]
    flip = states[0]
    assert flip["var_usd"] > flip["limit_usd"] == 1.0
    # not before var_min_samples returns were recorded (one sample every 30 s of clock)
    start = named(events, "daemon.summary")[0]["ts_ms"] - 900_000
    assert flip["ts_ms"] >= start + 10 * 30_000
    risk = named(events, "daemon.summary")[0]["risk"]
    assert risk["BTC"]["samples"] == risk["total"]["samples"] >= 10
    assert risk["total"]["var_99_usd"] == risk["BTC"]["var_99_usd"] > 0
    assert risk["total"]["cvar_99_usd"] >= risk["total"]["var_99_usd"]
    worst = risk["BTC"]["worst"]
    # short gamma: the worst cell is a big move with the vol up
    assert worst["spot_pct"] in (-10, 10) and worst["iv_points"] == 5 and worst["pnl_usd"] < 0


def test_without_enough_history_var_is_null_and_nothing_changes(tmp_path: Path) -> None:
    events = run(tmp_path, min_samples=40)  # 900 s / 30 s: never 40 returns
    assert named(events, "trading.state") == []
    risk = named(events, "daemon.summary")[0]["risk"]
    assert risk["BTC"]["var_99_usd"] is None and risk["total"]["cvar_99_usd"] is None
    assert 0 < risk["BTC"]["samples"] < 40
    assert risk["BTC"]["worst"] is not None  # the grid needs no history
