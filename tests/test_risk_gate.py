"""The hedger's risk gate (bot/hedger/risk_gate.py): every rule that rejects an order is one
`risk.rejected` event naming the rule, the order and the rule's numbers, never an exception.

Several rules report the order's amount among their numbers (contracts, reducing-only, position,
invalid order); the event once passed it twice and raised a TypeError, so the hedger alerted
`decision.failed` on every tick and the operator never saw which limit blocked the hedge. The
later tests drive that case through `hedgebot backtest` and the backtest's rig: an inverse-perp
hedge (10 USD contracts) whose gap needs more contracts than risk.max_order_contracts allows.
A trade refused like that is tried again only engine.retry_after_refusal_s later (not on every
tick), at once after a config change, a trading-state change or hedge-now.
"""

from __future__ import annotations

import itertools
import json
import math
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.backtest import ticks
from bot.backtest.rig import Rig
from bot.clock import run_virtual
from bot.config import Settings
from bot.config_execution import RiskConfig
from bot.core.instruments import Instrument, Kind
from bot.core.market import Ticker
from bot.core.orders import OrderIntent, Side
from bot.execution.ledger import Ledger
from bot.hedger.risk_gate import RiskGate

T0 = 1_767_225_600_000
SYMBOL = "BTC/USDT:USDT"
PERP = Instrument(SYMBOL, "BTC", Kind.PERP, quote="USDT")
TICKER = Ticker(SYMBOL, T0, bid=59_990.0, ask=60_010.0, mark=60_000.0, index=60_000.0)


class FixedClock:
    def now_ms(self) -> int:
        return T0


def gate(**risk: Any) -> tuple[RiskGate, Ledger, list[tuple[str, str, dict[str, Any]]]]:
    events: list[tuple[str, str, dict[str, Any]]] = []
    ledger = Ledger()

    def emit(kind: str, name: str, **data: Any) -> None:
        events.append((kind, name, data))

    g = RiskGate(RiskConfig(**risk), ledger, FixedClock(), emit, lambda: None)  # type: ignore[arg-type]
    return g, ledger, events


def intent(side: Side = Side.SELL, amount: float = 5.0) -> OrderIntent:
    return OrderIntent("hb-1", "BTC", SYMBOL, side, amount, "outside_band")


@pytest.mark.parametrize(
    ("risk", "order", "rule", "numbers"),
    [
        ({"max_order_contracts": 2}, intent(amount=5.0), "max_order_contracts", {"limit": 2.0}),
        ({"max_order_notional_usd": 100_000}, intent(amount=5.0), "max_order_notional", {}),
        ({"initial_state": "reducing_only"}, intent(amount=5.0), "reducing_only", {}),
        ({"max_position_contracts_default": 3}, intent(amount=5.0), "max_position", {"limit": 3}),
        ({}, intent(amount=math.nan), "invalid_order", {}),
        ({"initial_state": "halted"}, intent(), "halted", {}),
    ],
)
def test_every_rule_is_one_event_with_its_numbers(
    risk: dict[str, Any], order: OrderIntent, rule: str, numbers: dict[str, Any]
) -> None:
    g, _, events = gate(**risk)
    assert g.check("sim", order, 59_990.0, TICKER, PERP) is None
    assert len(events) == 1
    kind, name, data = events[0]
    assert (kind, name, data["rule"], data["approved"]) == ("reject", "risk.rejected", rule, False)
    assert (data["client_id"], data["symbol"], data["side"]) == ("hb-1", SYMBOL, "sell")
    amount = data["amount"]
    assert amount == order.amount or (math.isnan(amount) and math.isnan(order.amount))
    assert data.items() >= numbers.items()


def test_an_order_inside_every_limit_passes_silently() -> None:
    g, _, events = gate(max_order_contracts=10, max_position_contracts_default=10)
    check = g.check("sim", intent(amount=5.0), 59_990.0, TICKER, PERP)
    assert check is not None and check.amount == 5.0
    assert events == []


CONFIG = """
bot_id = "risk-gate-test"
[log]
level = "error"
[engine]
hedge_view = "coin"
stale_after_s = 120
retry_after_refusal_s = 5
[risk]
max_order_notional_usd = 5_000_000
max_order_contracts = 1000   # 10 USD contracts: 1,000 is about 0.17 BTC
[sim]
seed = 3
tick_ms = 60000
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.6
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
settlement = "inverse"
option_type = "put"
strike = 55_000
expiry_days = 30
qty = -40
[hedge.BTC]
account = "sim"
instrument = "BTC/USD:BTC"
unit = "coin"
policy = { kind = "band", band = 0.2 }
"""


def test_a_blocked_hedge_shows_the_rule_through_the_backtest(tmp_path: Path) -> None:
    cfg = tmp_path / "inverse.toml"
    cfg.write_text(CONFIG)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bot", "backtest", "--config", str(cfg), "--days", "0.1"]
    run = subprocess.run(
        [*cmd, "--out", str(out), "--events"], capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in (out / "events-3.jsonl").read_text().splitlines()]
    names = {e["event"] for e in events}
    assert "decision.failed" not in names
    rejected = [e for e in events if e["event"] == "risk.rejected"]
    assert rejected, names
    assert {e["rule"] for e in rejected} == {"max_order_contracts"}
    assert all(e["amount"] > e["limit"] == 1000.0 for e in rejected)
    assert json.loads((out / "report.json").read_text())["per_path"][0]["orders"] == 0


def rejections(tmp_path: Path, config: str, *args: str) -> list[dict[str, Any]]:
    cfg = tmp_path / "inverse.toml"
    cfg.write_text(config)
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "bot", "backtest", "--config", str(cfg), "--out", str(out)]
    run = subprocess.run([*cmd, "--events", *args], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    events = [json.loads(line) for line in (out / "events-3.jsonl").read_text().splitlines()]
    assert not [e for e in events if e["event"] == "decision.failed"]
    return [e for e in events if e["event"] == "risk.rejected"]


def test_a_refused_trade_is_retried_after_the_pause_not_on_every_tick(tmp_path: Path) -> None:
    """One-second ticks for 10 minutes: a rejection every 5 s of clock time, not 600."""
    spaced = rejections(tmp_path, CONFIG, "--days", "0.006944", "--tick-ms", "1000")
    gaps = {b["ts_ms"] - a["ts_ms"] for a, b in itertools.pairwise(spaced)}
    assert 100 <= len(spaced) <= 125 and min(gaps) >= 5000, (len(spaced), sorted(gaps)[:3])
    every = CONFIG.replace("retry_after_refusal_s = 5", "retry_after_refusal_s = 0")
    ticks = rejections(tmp_path, every, "--days", "0.006944", "--tick-ms", "1000")
    assert len(ticks) >= 590


def test_a_config_change_or_hedge_now_retries_at_once() -> None:
    settings = Settings(**tomllib.loads(CONFIG))

    async def main() -> None:
        rig = await Rig.start(settings, T0, None, None)
        h = rig.hedger
        try:
            await rig.clock.advance_to(T0 + 1000)
            for v in rig.venues.values():
                v.tick()
            ticks.feed(h, rig.venues, rig.hedge_lines)
            h.decide_dirty()  # the first decision: a trade, refused (max_order_contracts)
            assert not h.ledger.has_unsettled("BTC")
            assert h.sender.refused_lately("BTC") and h.evaluate("BTC") is None
            h.force.add("BTC")  # hedge-now: decides (and is refused) inside the pause
            d = h.evaluate("BTC")
            assert d is not None and d.trade and h.sender.refused_lately("BTC")
            wider = settings.risk.model_copy(update={"max_order_contracts": 1e7})
            h.apply(settings.model_copy(update={"risk": wider}))  # a reload or `ctl set`
            assert not h.sender.refused_lately("BTC")
            d = h.evaluate("BTC")
            assert d is not None and d.trade and h.ledger.has_unsettled("BTC")
        finally:
            await rig.close()

    run_virtual(main)
