"""The hedger's risk gate (bot/hedger/risk_gate.py): every rule that rejects an order is one
`risk.rejected` event naming the rule, the order and the rule's numbers, never an exception.

Several rules report the order's amount among their numbers (contracts, reducing-only, position,
invalid order); the event once passed it twice and raised a TypeError, so the hedger alerted
`decision.failed` on every tick and the operator never saw which limit blocked the hedge. The
last test drives that case through `hedgebot backtest`: an inverse-perp hedge (10 USD contracts)
whose gap needs more contracts than risk.max_order_contracts allows.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

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
