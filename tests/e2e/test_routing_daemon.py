"""Routing through the real entry point: `hedgebot run` on the simulated exchange with two
accounts whose fees, spreads and funding differ. Every order goes to the cheaper perp until its
position limit, then to the other; the choice and its numbers are in the decision event and the
journal's decision row."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_metrics_daemon import free_port, scrape, value
from tests.helpers import ROOT, clean_env, named, parse_events, run_bot

PERP = "BTC/USDT:USDT"
LIMIT = 3.0  # the cheap account's position limit, coin

CONFIG = """
bot_id = "route-e2e"
[journal]
path = "{journal}"
[metrics]
enabled = true
port = {port}
refresh_s = 0.2
[engine]
hedge_view = "coin"
stale_after_s = 30
[execution]
book_max_age_s = 60  # clock seconds: at speed 200 the default 5 s is 25 ms of real time
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


Run = tuple[list[dict[str, Any]], Path, list[str]]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Run:
    """One daemon run: its JSON events, its journal and the metrics scraped while it ran."""
    tmp = tmp_path_factory.mktemp("route")
    cfg = tmp / "route.toml"
    journal = tmp / "journal.sqlite"
    port = free_port()
    cfg.write_text(CONFIG.format(journal=journal, limit=LIMIT, port=port))
    log = tmp / "out.jsonl"
    with log.open("w") as out, (tmp / "err.txt").open("w") as err:  # files: a pipe would fill
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--config", str(cfg), "--duration", "3600",
             "--log-format", "json"],
            cwd=ROOT, env=clean_env(), stdout=out, stderr=err, text=True,
        )  # fmt: skip
        scrapes: list[str] = []
        deadline = time.monotonic() + 240
        while proc.poll() is None and time.monotonic() < deadline:
            with contextlib.suppress(OSError):
                scrapes.append(scrape(port))
            time.sleep(0.5)
        code = proc.wait(timeout=60)
    assert code == 0, (tmp / "err.txt").read_text()
    return parse_events(log.read_text()), journal, scrapes


def routed(events: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [d for d in named(events, "hedge.decision") if d["trade"]]


def test_every_order_goes_to_the_cheaper_perp_until_its_limit(
    run: Run,
) -> None:
    events, _, _ = run
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
    assert not named(events, "reconcile.position_diff")  # the venues agree with our books
    assert abs(summary["delta"]["BTC"]["delta_coin"]) < 1.0
    # where the hedge is left, candidate by candidate, agrees with the fills
    left = {r["account"]: r for r in summary["delta"]["BTC"]["routing"]}
    assert left["cheap"]["position"] == pytest.approx(pos)
    assert left["cheap"]["limit_coin"] == LIMIT


def test_the_route_is_in_the_journals_decision_rows(run: Run, tmp_path: Path) -> None:
    events, journal, _ = run
    out = tmp_path / "decisions.json"
    code, _, stderr = run_bot(
        ["journal", "--db", str(journal), "decisions", "--format", "json", "--output", str(out)]
    )
    assert code == 0, stderr
    rows = [r for r in json.loads(out.read_text()) if r["action"] == "trade"]
    assert len(rows) == len(routed(events))
    for row in rows:
        route = row["json"]["route"]
        assert {c["account"] for c in route["candidates"]} == {"cheap", "dear"}
        # something is chosen unless nothing could take it (a book older than allowed)
        assert route["chosen"] or all(c["skipped"] for c in route["candidates"]), route
    assert sum(bool(r["json"]["route"]["chosen"]) for r in rows) >= len(rows) - 2


def test_each_candidates_position_limit_and_funding_are_gauges(run: Run) -> None:
    _, _, scrapes = run
    line = '{{account="{a}",symbol="BTC/USDT:USDT",underlying="BTC"}}'
    cheap, dear = line.format(a="cheap"), line.format(a="dear")
    seen = [t for t in scrapes if value(t, "hedgebot_route_position_coin", dear)]
    assert seen, "the route gauges never showed a position"
    for text in seen:
        assert value(text, "hedgebot_route_limit_coin", cheap) == LIMIT
        # 5 MUSD at an index near 60k
        assert 50 < (value(text, "hedgebot_route_limit_coin", dear) or 0.0) < 150
        assert abs(value(text, "hedgebot_route_position_coin", cheap) or 0.0) <= LIMIT + 1e-9
        assert value(text, "hedgebot_route_funding_rate", cheap) == pytest.approx(0.0001)
        assert value(text, "hedgebot_route_funding_rate", dear) == pytest.approx(-0.0001)


def test_backtest_routes_with_the_venues_funding(tmp_path: Path) -> None:
    """`hedgebot backtest` on the example config: the same routing, funding read from the
    simulated venues as the daemon does (fresh, not counted as zero)."""
    code, _, stderr = run_bot(
        ["backtest", "--config", str(ROOT / "config" / "routing.toml"), "--days", "1",
         "--paths", "1", "--jobs", "1", "--out", str(tmp_path), "--events"],
        timeout=180,
    )  # fmt: skip
    assert code == 0, stderr
    events = parse_events(next(tmp_path.glob("events-*.jsonl")).read_text())
    trades = routed(events)
    assert trades
    for d in trades:
        assert {c["funding"] for c in d["route"]["candidates"]} == {"fresh"}
    first = {c["account"]: c for c in trades[0]["route"]["candidates"]}
    assert first["cheap"]["funding_rate"] == 0.0001 and first["dear"]["funding_rate"] == -0.0001
    assert {o["account"] for o in named(events, "order.sent")} == {"cheap", "dear"}
