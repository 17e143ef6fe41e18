"""Cross hedges in the daemon: `hedgebot run` on a virtual clock journals beta, correlation and
residual std in its decisions, and the real hedger reports them in the state document and the
metrics, with numbers checked against least squares on the prices it was fed."""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path

import numpy as np
import pytest
from prometheus_client import generate_latest

from bot.clock import VirtualClock, run_virtual
from bot.config import Settings
from bot.core.book import LineKey
from bot.core.instruments import Instrument
from bot.core.market import Ticker
from bot.core.orders import Fill, Side
from bot.events import EventBus
from bot.hedger.hedger import Hedger
from bot.io.ctl import render
from bot.io.metrics import Metrics
from bot.io.mqtt_schema_out import CommandReply
from bot.operator import OperatorControls
from bot.venues.sim import SimVenue
from tests import tomlw
from tests.helpers import ROOT, Sink, run_bot

PAIR = ROOT / "tests" / "backtest_configs" / "cross_pair.toml"
START = 1_767_225_600_000
MIN = 60_000


def test_daemon_journals_the_cross_hedge_in_its_decisions(tmp_path: Path) -> None:
    doc = tomllib.loads(PAIR.read_text())
    doc["hedge"]["SOL"]["cross"].update(window=120, min_samples=60)
    doc["journal"] = {"path": str(tmp_path / "j.sqlite")}
    cfg = tmp_path / "d.toml"
    cfg.write_text(tomlw.dumps(doc))
    rc, _, err = run_bot(
        ["run", "--config", str(cfg), "--clock", "virtual", "--duration", "7200"], timeout=300
    )
    assert rc == 0, err

    def table(name: str) -> list[dict[str, object]]:
        out = tmp_path / f"{name}.json"
        args = ["journal", "--db", str(tmp_path / "j.sqlite"), name, "-f", "json", "-o", str(out)]
        assert run_bot(args)[0] == 0
        rows: list[dict[str, object]] = json.loads(out.read_text())
        return rows

    decisions = table("decisions")
    sol = [d for d in decisions if d["underlying"] == "SOL"]
    assert sol[0]["reason"] == "cross_warmup"
    hedged = next(d for d in sol if d["reason"] == "cross_hedged")
    c = hedged["json"]["cross"]  # type: ignore[index]
    assert c["samples"] == 60 and c["status"] == "active"
    assert 0.8 < c["corr"] <= 1 and c["beta"]["BTC"] > 0 and c["residual_std"] > 0
    btc = [d for d in decisions if d["underlying"] == "BTC" and d["action"] == "trade"]
    assert btc and all(d["ts"] >= hedged["ts"] for d in btc)  # type: ignore[operator]
    assert all(d["json"]["cross"]["carries_coin"]["SOL"] > 0 for d in btc)  # type: ignore[index]
    events = table("events")
    assert [e["name"] for e in events if str(e["name"]).startswith("cross.")] == ["cross.ready"]
    orders = table("orders")
    assert orders and {o["symbol"] for o in orders} == {"BTC/USDT:USDT"}


def settings() -> Settings:
    return Settings(
        engine={"stale_after_s": 86_400, "hedge_view": "coin"},
        sim={"seed": 3, "underlyings": {"BTC": {"price": 60_000.0}, "SOL": {"price": 150.0}}},
        accounts={"sim": {"exchange": "sim"}},
        # bands no move reaches: nothing trades, the numbers are what the prices make them
        hedge={
            "BTC": {"instrument": "BTC/USDT:USDT", "policy": {"kind": "band", "band": 1e6}},
            "SOL": {
                "instrument": "SOL/USDT:USDT",
                "policy": {"kind": "band", "band": 1e6},
                "cross": {"proxies": ["BTC"], "sample_s": 60, "window": 50, "min_samples": 40},
            },
        },
    )


def test_state_document_and_metrics_report_beta_corr_and_residual() -> None:
    rng = np.random.default_rng(4)
    x = rng.standard_normal(80) * 0.002
    btc = 60_000.0 * np.exp(np.cumsum(x))
    sol = 150.0 * np.exp(np.cumsum(1.5 * x + rng.standard_normal(80) * 0.001))
    s = settings()

    async def main() -> tuple[list[dict[str, object]], Sink]:
        clock = VirtualClock(START)
        venue = SimVenue("sim", s.sim, [], clock, run_market=False)
        catalog: dict[LineKey, Instrument] = {}
        sink = Sink()
        hedger = Hedger(s, {"sim": venue}, catalog, clock, EventBus(sink))
        await venue.connect()
        for symbol, ins in (await venue.load_instruments()).items():
            catalog[("sim", symbol)] = ins
        hedger.add_hedge_lines()
        fill = Fill("x", "SOL/USDT:USDT", Side.BUY, 2000.0, 150.0, 0.0, "USDT", START, "t1")
        hedger.on_fills("sim", [fill])
        states = []
        for i in range(80):
            await clock.advance_to(START + (i + 1) * MIN)
            for sym, p in (("BTC/USDT:USDT", btc[i]), ("SOL/USDT:USDT", sol[i])):
                now = clock.now_ms()
                hedger.on_ticker("sim", Ticker(sym, now, p - 0.01, p + 0.01, p, p, p))
            hedger.decide_dirty()
            if i in (39, 79):  # 39 returns: warmup; 79: a full window of 50
                states.append(OperatorControls(hedger, lambda k: None).state())
        hedger.riskview.stop()
        await venue.close()
        return states, sink

    (warm, done), sink = run_virtual(main)
    assert warm["underlyings"]["SOL"]["cross"]["status"] == "warmup"  # type: ignore[index]
    assert warm["underlyings"]["BTC"]["delta_coin"] == 0.0  # type: ignore[index]
    c = done["underlyings"]["SOL"]["cross"]  # type: ignore[index]
    r = np.diff(np.log(np.column_stack([sol, btc])), axis=0)[-50:]
    slope, icept = np.polyfit(r[:, 1], r[:, 0], 1)
    resid = r[:, 0] - (slope * r[:, 1] + icept)
    assert c["status"] == "active" and c["samples"] == 50
    assert c["beta"]["BTC"] == pytest.approx(slope, rel=1e-9)
    assert c["corr"] == pytest.approx(abs(np.corrcoef(r.T)[0, 1]), rel=1e-9)
    assert c["residual_std"] == pytest.approx(resid.std(ddof=1), rel=1e-9)
    # SOL's USD delta, through beta, is BTC coin on BTC's book (2000 SOL held, coin view)
    mapped = slope * 2000.0 * sol[-1] / btc[-1]
    assert c["mapped_coin"]["BTC"] == pytest.approx(mapped, rel=1e-9)
    assert done["underlyings"]["BTC"]["delta_coin"] == pytest.approx(mapped)  # type: ignore[index]
    assert done["underlyings"]["BTC"]["cross"] == {"carries_coin": {"SOL": c["mapped_coin"]["BTC"]}}  # type: ignore[index]
    assert [e["samples"] for e in sink.named("cross.ready")] == [40]
    m = Metrics("t")
    m.refresh(done)
    text = generate_latest(m.registry).decode()

    def gauge(series: str) -> float:
        line = next(x for x in text.splitlines() if x.startswith(series + " "))
        return float(line.split()[-1])

    assert gauge('hedgebot_cross_beta{proxy="BTC",underlying="SOL"}') == pytest.approx(slope)
    assert gauge('hedgebot_cross_corr{underlying="SOL"}') == pytest.approx(c["corr"])
    assert gauge('hedgebot_cross_residual_std{underlying="SOL"}') == pytest.approx(
        c["residual_std"]
    )
    assert gauge('hedgebot_cross_active{underlying="SOL"}') == 1.0
    # what `hedgebot ctl status` prints from the same document
    shown = render(CommandReply(id=1, ok=True, cmd="status", result=done, ts_ms=START))
    sol_line = next(x for x in shown.splitlines() if x.startswith("  SOL:"))
    assert 'cross active on ["BTC"]: beta {"BTC": ' in sol_line
    assert "samples 50/40" in sol_line and "residual std " in sol_line
    btc_line = next(x for x in shown.splitlines() if x.startswith("  BTC:"))
    assert 'carries {"SOL": ' in btc_line
    assert not math.isnan(gauge('hedgebot_delta_coin{underlying="BTC"}'))


def test_a_restart_keeps_the_proxy_hedge_through_the_new_warmup(tmp_path: Path) -> None:
    """The estimate's history dies with the daemon; the share the BTC perp carried does not:
    it comes back from the journal, so the new warmup neither unwinds nor re-sizes it."""
    doc = tomllib.loads(PAIR.read_text())
    doc["hedge"]["SOL"]["cross"].update(window=120, min_samples=60)
    doc["hedge"]["BTC"]["policy"]["band"] = 0.2
    doc["journal"] = {"path": str(tmp_path / "j.sqlite")}
    doc["sim"]["state_file"] = str(tmp_path / "sim.json")
    doc["log"]["level"] = "info"
    cfg = tmp_path / "d.toml"
    cfg.write_text(tomlw.dumps(doc))
    run = ["run", "--config", str(cfg), "--clock", "virtual", "--log-format", "json"]
    rc, first, err = run_bot([*run, "--duration", "5400"], timeout=300)
    assert rc == 0, err
    sent = [e for e in first if e["event"] == "order.sent"]
    assert sent and all(e["symbol"] == "BTC/USDT:USDT" for e in sent)
    rc, second, err = run_bot([*run, "--duration", "1800", "--start-ms", "1767231000000"])
    assert rc == 0, err
    restored = [e for e in second if e["event"] == "cross.restored"]
    assert len(restored) == 1 and restored[0]["mapped_coin"]["BTC"] > 0
    assert not [e for e in second if e["event"] in ("cross.ready", "order.sent")]
    sol = [e for e in second if e["event"] == "hedge.decision" and e["underlying"] == "SOL"]
    assert sol and sol[0]["reason"] == "cross_warmup"
    assert sol[0]["cross"]["mapped_coin"] == restored[0]["mapped_coin"]


def test_a_stale_cross_hedged_feed_freezes_its_share() -> None:
    """SOL's feed goes silent: past engine.stale_after_s its share on BTC stops following BTC's
    price (stale data sizes nothing); while fresh it follows (beta x D / price of BTC)."""
    s = settings()
    s = s.model_copy(update={"engine": s.engine.model_copy(update={"stale_after_s": 150.0})})
    rng = np.random.default_rng(9)
    x = rng.standard_normal(70) * 0.002
    btc = 60_000.0 * np.exp(np.cumsum(x))
    sol = 150.0 * np.exp(np.cumsum(1.5 * x + rng.standard_normal(70) * 0.001))

    async def main() -> list[float]:
        clock = VirtualClock(START)
        venue = SimVenue("sim", s.sim, [], clock, run_market=False)
        catalog: dict[LineKey, Instrument] = {}
        hedger = Hedger(s, {"sim": venue}, catalog, clock, EventBus(Sink()))
        await venue.connect()
        for symbol, ins in (await venue.load_instruments()).items():
            catalog[("sim", symbol)] = ins
        hedger.add_hedge_lines()
        fill = Fill("x", "SOL/USDT:USDT", Side.BUY, 2000.0, 150.0, 0.0, "USDT", START, "t1")
        hedger.on_fills("sim", [fill])
        carried = []
        for i in range(70):
            await clock.advance_to(START + (i + 1) * MIN)
            now = clock.now_ms()
            feeds = [("BTC/USDT:USDT", btc[i])] + ([("SOL/USDT:USDT", sol[i])] if i < 60 else [])
            for sym, p in feeds:
                hedger.on_ticker("sim", Ticker(sym, now, p - 0.01, p + 0.01, p, p, p))
            hedger.decide_dirty()
            carried.append(hedger.cross.mapped_coin("SOL")["BTC"] if i >= 41 else 0.0)
        hedger.riskview.stop()
        await venue.close()
        return carried

    carried = run_virtual(main)
    # fresh (i = 60, 61: SOL's last tick is 1-2 minutes old): follows BTC's price
    assert carried[61] == pytest.approx(carried[60] * btc[60] / btc[61], rel=1e-9)
    assert carried[61] != carried[60]
    # stale from i = 62 (150 s): frozen, whatever BTC does
    assert len(set(carried[62:])) == 1
    assert len(set(btc[62:].tolist())) == 8
