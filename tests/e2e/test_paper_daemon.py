"""The daemon end to end on the simulated exchange, through `python -m bot run`."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers import named, run_bot

CONFIG = """
bot_id = "e2e"
[journal]
path = "{journal}"
[engine]
hedge_view = "usd"
stale_after_s = 30
[execution]
max_slippage_bps = 15
max_fee_bps = 10
order_timeout_s = 5
[risk]
max_order_notional_usd = 2_000_000
max_order_contracts = 40
max_orders_per_minute = 60
[sim]
seed = {seed}
speed = 200.0
tick_ms = 1000
latency_ms = 100
partial_fill_rate = 0.3
reject_rate = 0.05
[sim.underlyings.BTC]
price = 60_000.0
vol = 1.2
jump_intensity = 200.0
jump_std = 0.01
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "inverse"
option_type = "call"
strike = 60_000
expiry_days = 2
qty = -30
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "linear"
option_type = "put"
strike = 60_000
expiry_days = 2
qty = -30
[[positions]]
underlying = "BTC"
kind = "spot"
qty = 4
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
unit = "coin"
policy = {{ {policy} }}
"""


def test_daemon_keeps_delta_in_band_and_respects_guards(tmp_path: Path) -> None:
    cfg = tmp_path / "e2e.toml"
    cfg.write_text(
        CONFIG.format(
            seed=11, journal=tmp_path / "journal.sqlite", policy='kind = "band", band = 0.4'
        )
    )
    code, events, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "600", "--log-format", "json"], timeout=180
    )
    assert code == 0, stderr

    # waiting for the first tick at start-up is a state, not an outage alert
    assert named(events, "trading.waiting")
    assert not [e for e in named(events, "trading.halted") if e["reason"] == "no_market_data"]

    decisions = named(events, "hedge.decision")
    assert len(decisions) >= 10

    sent = {e["client_id"]: e for e in named(events, "order.sent")}
    settled = named(events, "hedge.settled")
    assert len(settled) >= 5, "the market should have pushed delta out of the band repeatedly"
    for s in settled:
        # after each completed hedge the delta is back inside the band (within one lot)
        assert s["inside_band"], s
        assert abs(s["delta"] - s["target"]) <= s["band"] + s["lot"] + 1e-9

    for o in sent.values():
        assert o["amount"] <= 40, o  # size guard
        cap = o["mid"] * o["max_slippage_bps"] / 10_000
        assert abs(o["price"] - o["mid"]) <= cap + 0.1, o  # limit inside the slippage cap
    for f in named(events, "order.fill"):
        o = sent[f["client_id"]]
        worse = (f["price"] - o["mid"]) * (1 if o["side"] == "buy" else -1)
        assert worse <= o["mid"] * o["max_slippage_bps"] / 10_000 + 0.1, (f, o)

    # one client id per intent: no id was sent twice
    assert len(sent) == len(named(events, "order.sent"))

    summary = named(events, "daemon.summary")
    assert len(summary) == 1
    assert summary[0]["open_orders_left"] == 0
    assert summary[0]["orders_sent"] == len(sent)
    assert summary[0]["fills"] == len(named(events, "order.fill"))
    assert abs(summary[0]["delta"]["BTC"]["delta_coin"]) < 5


def test_asymmetric_band_trading_to_its_edges(tmp_path: Path) -> None:
    """[hedge.BTC.policy] with two sides and to = "edge": each trade goes to the edge on its
    side, and every report carries both sides."""
    cfg = tmp_path / "asym.toml"
    policy = 'kind = "band", band_lower = 0.2, band_upper = 0.6, to = "edge"'
    cfg.write_text(CONFIG.format(seed=12, journal=tmp_path / "journal.sqlite", policy=policy))
    code, events, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "300", "--log-format", "json"], timeout=180
    )
    assert code == 0, stderr

    decisions = named(events, "hedge.decision")
    assert decisions
    for d in decisions:
        assert (d["policy"], d["band_lower"], d["band_upper"], d["band"], d["to"]) == (
            "band",
            0.2,
            0.6,
            0.6,
            "edge",
        ), d
    trades = [d for d in decisions if d["reason"] == "outside_band"]
    assert len(trades) >= 3
    for d in trades:
        above = d["delta"] > d["target"]
        edge = d["target"] + 0.6 if above else d["target"] - 0.2
        assert d["gap_coin"] == pytest.approx(edge - d["delta"]), d

    # Trading to the edge leaves no margin, so in this fast market some hedges settle outside
    # again; hedge.settled says which, judged on each side.
    settled = named(events, "hedge.settled")
    assert settled and any(s["inside_band"] for s in settled)
    for s in settled:
        assert (s["band_lower"], s["band_upper"]) == (0.2, 0.6), s
        drift = s["delta"] - s["target"]
        assert s["inside_band"] == (-0.2 - s["lot"] <= drift <= 0.6 + s["lot"]), s


def test_a_restart_without_the_sim_state_books_the_new_fills(tmp_path: Path) -> None:
    """The paper exchange starts afresh on each run (no sim.state_file) while the journal stays.
    Its trade ids used to restart at t-1, so the second run's fills read as replays of the
    first run's, were not booked, and the hedger sent the same hedge again (the venue held
    twice the hedge until reconciliation). Ids now carry the fresh start's time."""
    cfg = tmp_path / "e2e.toml"
    policy = 'kind = "band", band = 0.4'
    cfg.write_text(CONFIG.format(seed=13, journal=tmp_path / "journal.sqlite", policy=policy))
    argv = ["run", "--config", str(cfg), "--duration", "300", "--log-format", "json"]
    for run in (1, 2):
        code, events, stderr = run_bot(argv, timeout=180)
        assert code == 0, stderr
        done = [e for e in named(events, "order.done") if e["filled"] > 0]
        assert done, f"run {run}: the starting delta is out of the band: something fills"
        booked: dict[str, float] = {}
        for f in named(events, "order.fill"):
            booked[f["client_id"]] = booked.get(f["client_id"], 0.0) + f["amount"]
        for d in done:
            assert booked.get(d["client_id"], 0.0) == pytest.approx(d["filled"]), (run, d)
        assert not named(events, "reconcile.position_diff"), run
