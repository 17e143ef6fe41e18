"""The "usd" view keeps a coin-margined account's USD value flat, through `hedgebot backtest`:
a short coin-settled straddle hedged with the inverse perp does as well as the same straddle in
linear instruments, and much worse when the coin it holds is left out (the "coin" view)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers import ROOT, clean_env, run_bot

CONFIGS = ROOT / "tests" / "backtest_configs"
# 7 days in 6-hour ticks: the two books see the same seeded price paths, so their hedge errors
# (gamma between ticks) match path by path and 40 paths are enough for a 15% bound.
ARGS = ["--days", "7", "--tick-ms", "21600000", "--jobs", "2", "--seed", "1"]


def hedged_std(config: Path, out: Path, paths: int) -> float:
    cmd = [sys.executable, "-m", "bot", "backtest", "-c", str(config), "--paths", str(paths)]
    done = subprocess.run(
        [*cmd, *ARGS, "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=300,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads((out / "report.json").read_text())
    return float(report["summary"]["hedged_pnl_usd"]["std"])


def test_coin_margined_straddle_usd_value_as_flat_as_linear(tmp_path: Path) -> None:
    coin = hedged_std(CONFIGS / "coin_straddle.toml", tmp_path / "coin", 40)
    linear = hedged_std(CONFIGS / "linear_straddle.toml", tmp_path / "linear", 40)
    assert abs(coin - linear) <= 0.15 * linear, (coin, linear)
    # Without the coin held (collateral, premium, coin P&L) the account's USD value swings with
    # the price: the same book in the "coin" view.
    text = (CONFIGS / "coin_straddle.toml").read_text()
    coin_view = tmp_path / "coin_view.toml"
    coin_view.write_text(text.replace('hedge_view = "usd"', 'hedge_view = "coin"'))
    assert 'hedge_view = "coin"' in coin_view.read_text()
    without = hedged_std(coin_view, tmp_path / "coin_view", 12)
    assert without > 4 * linear, (without, linear)


def first_delta(tmp: Path, name: str, view: str, btc: float) -> float:
    """The first decision's delta of the daemon (`run --clock virtual`) on the coin-margined
    config with `btc` of collateral."""
    text = (CONFIGS / "coin_straddle.toml").read_text()
    text = text.replace('hedge_view = "usd"', f'hedge_view = "{view}"')
    text = text.replace("balances = { BTC = 1.0 }", f"balances = {{ BTC = {btc} }}")
    cfg = tmp / f"{name}.toml"
    cfg.write_text(text + f'\n[journal]\npath = "{tmp / name}.sqlite"\n')
    code, events, err = run_bot(
        ["run", "--config", str(cfg), "--clock", "virtual", "--duration", "120"], timeout=120
    )
    assert code == 0, err
    decisions = [e for e in events if e.get("event") == "hedge.decision"]
    assert decisions, err
    return float(decisions[0]["delta"])


def test_daemon_counts_the_balance_it_reads_in_the_usd_view(tmp_path: Path) -> None:
    one = first_delta(tmp_path, "usd1", "usd", 1.0)
    more = first_delta(tmp_path, "usd2", "usd", 1.5)
    assert more - one == pytest.approx(0.5, abs=0.01)  # the same market: only the balance moved
    coin_one = first_delta(tmp_path, "coin1", "coin", 1.0)
    coin_more = first_delta(tmp_path, "coin2", "coin", 1.5)
    assert coin_more == pytest.approx(coin_one, abs=1e-9)
    # collateral and premium received (in the balance) less the option value (in the deltas)
    assert one - coin_one == pytest.approx(1.0, abs=0.05)
