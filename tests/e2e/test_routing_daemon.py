"""Routing through the real entry point: `hedgebot run` on the simulated exchange with two
accounts whose fees, spreads and funding differ. Every order goes to the cheaper perp until its
position limit, then to the other; the choice and its numbers are in the decision event and the
journal's decision row."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import named, run_bot

PERP = "BTC/USDT:USDT"
LIMIT = 3.0  # the cheap account's position limit, coin

CONFIG = """
bot_id = "route-e2e"
[journal]
path = "{journal}"
[engine]
hedge_view = "coin"
stale_after_s = 30
[execution]
max_slippage_bps = 20
max_fee_bps = 10
order_timeout_s = 5
[risk]
max_order_notional_usd = 5_000_000
max_orders_per_minute = 120
[routing]
holding_horizon_h = 8
funding_refresh_s = 60
[sim]
seed = 5
speed = 200.0
tick_ms = 1000
latency_ms = 100
spread_bps = 4.0
taker_fee = 0.0005
[sim.underlyings.BTC]
price = 60_000.0
vol = 1.2
jump_intensity = 200.0
jump_std = 0.01
[sim.accounts.cheap]
taker_fee = 0.0003
spread_bps = 2.0
funding_rate = 0.0001
[sim.accounts.dear]
funding_rate = -0.0001
[accounts.cheap]
exchange = "sim"
[accounts.dear]
exchange = "sim"
[[positions]]
account = "cheap"
underlying = "BTC"
kind = "option"
settlement = "linear"
option_type = "call"
strike = 60_000
expiry_days = 2
qty = -40
[hedge.BTC]
account = "dear"
instrument = "BTC/USDT:USDT"
unit = "coin"
policy = {{ kind = "band", band = 0.3 }}
[[hedge.BTC.candidates]]
account = "dear"
instrument = "BTC/USDT:USDT"
max_position_usd = 5_000_000
[[hedge.BTC.candidates]]
account = "cheap"
instrument = "BTC/USDT:USDT"
max_position_coin = {limit}
"""


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> tuple[list[dict[str, Any]], Path]:
    tmp = tmp_path_factory.mktemp("route")
    cfg = tmp / "route.toml"
    journal = tmp / "journal.sqlite"
    cfg.write_text(CONFIG.format(journal=journal, limit=LIMIT))
    code, events, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "3600", "--log-format", "json"], timeout=240
    )
    assert code == 0, stderr
    return events, journal


def routed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in named(events, "hedge.decision") if d["trade"]]


def test_every_order_goes_to_the_cheaper_perp_until_its_limit(
    run: tuple[list[dict[str, Any]], Path],
) -> None:
    events, _ = run
    trades = routed(events)
    assert len(trades) >= 4, "the market should have moved delta out of the band repeatedly"
    split = at_limit = 0
    for d in trades:
        r = d["route"]
        costs = {c["account"]: c for c in r["candidates"]}
        cheap, dear = costs["cheap"], costs["dear"]
        buy = d["gap_coin"] > 0
        # the numbers behind the choice: fee, half-spread, funding signed by the side
        assert cheap["fee_bps"] == pytest.approx(3.0) and dear["fee_bps"] == pytest.approx(5.0)
        assert cheap["half_spread_bps"] == pytest.approx(1.0, abs=0.05)
        assert dear["half_spread_bps"] == pytest.approx(2.0, abs=0.05)
        assert cheap["funding_bps"] == pytest.approx(1.0 if buy else -1.0)
        assert dear["funding_bps"] == pytest.approx(-1.0 if buy else 1.0)
        assert cheap["funding"] == dear["funding"] == "fresh"
        assert cheap["total_bps"] < dear["total_bps"]
        chosen = [(g["account"], g["coin"]) for g in r["chosen"]]
        if cheap["skipped"] is not None:  # at its limit, or its book too old to send on
            assert [a for a, _ in chosen] in (["dear"], []), d
            at_limit += cheap["skipped"] == "at_limit"
            continue
        assert cheap["skipped"] is None
        assert chosen[0][0] == "cheap", d  # the cheaper one first
        if len(chosen) > 1:
            split += 1
            assert [a for a, _ in chosen] == ["cheap", "dear"]
            assert abs(chosen[0][1]) == pytest.approx(cheap["room_coin"])  # filled to its limit
        assert sum(c for _, c in chosen) == pytest.approx(d["gap_coin"])
    assert split >= 1, "the first hedge (about 20 BTC) is larger than the cheap limit"
    assert at_limit >= 1, "buys after the cheap account reached its limit go to the other"

    sent = named(events, "order.sent")
    assert {o["account"] for o in sent} == {"cheap", "dear"}
    assert all(o["symbol"] == PERP for o in sent)
    # the cheap account's position (from its fills) never passes its limit
    pos = 0.0
    for f in named(events, "order.fill"):
        if f["account"] == "cheap":
            pos += f["amount"] if f["side"] == "buy" else -f["amount"]
            assert abs(pos) <= LIMIT + 1e-9, f
    # every fill of both accounts was booked (same symbol, each exchange's own trade ids)
    summary = named(events, "daemon.summary")[-1]
    assert summary["fills"] == len(named(events, "order.fill"))
    assert not named(events, "position.stream_disagrees")
    assert not named(events, "reconcile.position_diff")
    assert abs(summary["delta"]["BTC"]["delta_coin"]) < 1.0


def test_the_route_is_in_the_journals_decision_rows(
    run: tuple[list[dict[str, Any]], Path],
) -> None:
    events, journal = run
    db = sqlite3.connect(journal)
    rows = db.execute("SELECT json FROM decisions WHERE action = 'trade' ORDER BY ts").fetchall()
    db.close()
    assert len(rows) == len(routed(events))
    for (text,) in rows:
        route = json.loads(text)["route"]
        assert {c["account"] for c in route["candidates"]} == {"cheap", "dear"}
        assert route["chosen"]
