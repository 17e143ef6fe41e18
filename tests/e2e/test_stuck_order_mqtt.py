"""A stuck order end to end: the daemon (`python -m bot run`, simulated exchange whose venue never
answers about the first hedge) against a real Mosquitto. The order alerts again and again with
growing gaps, the state document lists it and its underlying stays blocked, and the operator's
`resolve-order` command (confirmed) settles it so hedging resumes."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from tests.e2e.test_mqtt_daemon import (  # noqa: F401 (broker, operator: fixtures)
    Operator,
    broker,
    no_traceback,
    operator,
    start_daemon,
    write_config,
)
from tests.test_mqtt_broker import Broker

pytestmark = pytest.mark.slow


def test_stuck_order_alerts_shows_and_is_resolved_by_command(
    tmp_path: Path,
    broker: Broker,  # noqa: F811
    operator: Operator,  # noqa: F811
) -> None:
    cfg = write_config(tmp_path, broker.port, vol=0.0001, jumps=0.0)
    text = cfg.read_text()
    text = text.replace("[sim]\n", "[sim]\nunreachable_orders = 1\n", 1)
    text = text.replace("[execution]\n", "[execution]\nstuck_alert_s = 2\nstuck_alert_max_s = 60\n")
    cfg.write_text(text)
    d = start_daemon(cfg)
    try:
        d.wait_event("order.stuck", lambda e: e["alerts"] >= 4)
        stuck = d.named("order.stuck")
        cid = stuck[0]["client_id"]
        gaps = [b["ts_ms"] - a["ts_ms"] for a, b in itertools.pairwise(stuck)]
        assert all(y > x for x, y in itertools.pairwise(gaps)), gaps
        assert d.count("order.sent") == 1  # blocked: no second hedge for the same drift
        state = operator.state_after(0, lambda s: bool(s.get("stuck_orders")))
        assert state["stuck_orders"][0]["client_id"] == cid
        assert state["stuck_orders"][0]["underlying"] == "BTC"

        refused = operator.call("resolve-order", {"client_id": cid, "status": "rejected"})
        assert not refused["ok"] and "confirm" in refused["error"]
        wrong = operator.call(
            "resolve-order", {"client_id": "hbnosuch", "status": "rejected", "confirm": True}
        )
        assert not wrong["ok"] and "not an order of this daemon" in wrong["error"]
        assert d.count("order.sent") == 1

        ok = operator.call(
            "resolve-order", {"client_id": cid, "status": "rejected", "confirm": True}
        )
        assert ok["ok"], ok
        assert ok["result"]["status"] == "rejected"
        d.wait_event("order.resolved_by_operator", lambda e: e["client_id"] == cid)
        # Hedging resumes: a new order for the drift, which fills; nothing is stuck any more.
        d.wait_event("order.done", lambda e: e["client_id"] != cid and e["status"] == "filled")
        operator.state_after(0, lambda s: s.get("stuck_orders") == [] and s["open_orders"] == [])
        assert d.stop() == 0
    finally:
        d.kill()
    no_traceback(d)
