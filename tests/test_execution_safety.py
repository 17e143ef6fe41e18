"""Money safety under venue faults, on the real simulated exchange and a real SQLite journal:
a fill is booked once across restarts, an order lookups cannot find yet stays in flight for the
lookup grace, a stuck order keeps alerting until an operator resolves it."""

from __future__ import annotations

import asyncio
import itertools
from pathlib import Path
from typing import Any

import pytest

from bot.clock import LiveClock
from bot.config import Settings
from bot.config_execution import ExecutionConfig
from bot.control import CommandError
from bot.core.orders import OrderIntent, OrderRequest, OrderStatus, Side
from bot.engine import Engine
from bot.events import EventBus
from bot.execution import recovery
from bot.execution.executor import Executor
from bot.execution.ledger import Ledger
from bot.io.journal import Journal
from bot.io.metrics import Metrics
from bot.io.mqtt_schema_in import parse_command
from bot.venues.sim import SimVenue
from tests.helpers import Sink
from tests.test_executor import PERP, make_rig  # noqa: F401 (the rig fixture)

SPEED = 20.0


# ---- 5. a fill is booked once, across restarts ------------------------------------------------


async def test_fills_resent_after_a_restart_do_not_move_the_position(
    make_rig: Any,  # noqa: F811
    tmp_path: Path,
) -> None:
    rig = await make_rig()
    order = rig.submit(rig.intent(1.0))
    await rig.idle()
    assert order.status is OrderStatus.FILLED
    key = ("sim", PERP)
    assert rig.ledger.positions[key] == pytest.approx(1.0)
    fills = list(rig.venue.exchange.fills_by_order["hbtest1"])
    assert fills

    # The second lifetime: a fresh ledger and executor on the same journal file, the position
    # adopted from the venue (the initial reconciliation), then the venue re-sends every fill.
    rig.journal.close()
    rig.journal = journal = Journal(tmp_path / "journal.sqlite")
    ledger = Ledger()
    sink = Sink()
    ex = Executor(
        {"sim": rig.venue},
        rig.ex.instruments,
        ledger,
        EventBus(sink),
        rig.clock,
        rig.ex.cfg,
        journal,
    )
    ledger.adopt_position(key, rig.venue.exchange.ledger.qty(PERP))
    assert [ex.on_fill("sim", f) for f in fills] == [False] * len(fills)
    assert ledger.positions[key] == pytest.approx(1.0)
    assert ledger.fills_count == 0 and not sink.named("order.fill")

    # Without the journal's answer (the old in-memory dedupe) the same re-send doubles it.
    bare = Ledger()
    bare.adopt_position(key, 1.0)
    naive = Executor(
        {"sim": rig.venue}, rig.ex.instruments, bare, EventBus(Sink()), rig.clock, rig.ex.cfg
    )
    for f in fills:
        naive.on_fill("sim", f)
    assert bare.positions[key] == pytest.approx(2.0)


# ---- 6. "not found" is believed only after the lookup grace -----------------------------------


def quiet_settings(tmp_path: Path, **execution: Any) -> Settings:
    return Settings(
        journal={"path": tmp_path / "journal.sqlite"},
        engine={"stale_after_s": 60, "reconcile_interval_s": 5},
        execution={"order_timeout_s": 5, **execution},
        sim={
            "seed": 2,
            "speed": SPEED,
            "latency_ms": 50,
            # A quiet market: the only drift is the one the starting position brings.
            "underlyings": {"BTC": {"price": 60_000.0, "vol": 0.0001, "jump_intensity": 0.0}},
        },
        positions=[
            {
                "underlying": "BTC",
                "kind": "option",
                "settlement": "linear",
                "option_type": "call",
                "strike": 60_000,
                "expiry_days": 30,
                "qty": -10,
            }
        ],
        hedge={
            "BTC": {
                "account": "sim",
                "instrument": PERP,
                "unit": "coin",
                "policy": {"kind": "band", "band": 0.3},
            }
        },
    )


class Running:
    def __init__(self, settings: Settings) -> None:
        self.clock = LiveClock(SPEED)
        self.venue = SimVenue("sim", settings.sim, settings.positions, self.clock)
        self.sink = Sink()
        assert settings.journal.path is not None
        self.journal = Journal(settings.journal.path)
        self.engine = Engine(
            settings,
            {"sim": self.venue},
            self.clock,
            EventBus(self.sink, self.journal),
            journal=self.journal,
        )
        self.stop = asyncio.Event()
        self.task: asyncio.Task[Any] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.engine.run(self.stop))

    async def until(self, pred: Any, clock_s: float) -> None:
        end = self.clock.now_ms() + int(clock_s * 1000)
        while not pred():
            assert self.clock.now_ms() < end, "timed out"
            assert self.task is not None and not self.task.done(), self.task
            await asyncio.sleep(0.02)

    async def finish(self) -> dict[str, Any]:
        self.stop.set()
        assert self.task is not None
        summary: dict[str, Any] = await asyncio.wait_for(self.task, 30)
        self.journal.close()
        return summary


@pytest.mark.parametrize("grace_s", [60.0, 0.0])
async def test_an_order_lookups_cannot_find_yet_is_hedged_once(
    tmp_path: Path, grace_s: float
) -> None:
    # The venue shows new orders to lookups only 20 s after they arrive, the create's answer is
    # lost and the order/fill streams say nothing: only lookups can tell what happened.
    r = Running(quiet_settings(tmp_path, lookup_grace_s=grace_s))
    r.venue.hide_new_orders(20_000)
    r.venue.inject_lost_response()
    r.venue.pause_stream("orders")
    r.venue.pause_stream("fills")
    r.start()
    await r.until(lambda: r.sink.named("order.sent"), 30)
    if grace_s == 0.0:
        # Without a grace, one "not found" ends it: the delta forgets an order that filled and
        # the same drift is hedged a second time.
        await r.until(lambda: len(r.sink.named("order.sent")) >= 2, 30)
        await r.finish()
        assert r.sink.named("order.rejected")[0]["reason"] == "not found within lookup_grace_s"
        return
    cid = r.sink.named("order.sent")[0]["client_id"]
    await r.until(lambda: r.sink.named("order.not_found_yet"), 10)
    # Unseen but within the grace: still in flight, counted in delta, blocking its underlying.
    assert r.engine.ledger.has_unsettled("BTC")
    assert r.engine.ledger.in_flight()[("sim", PERP)] > 0
    await r.until(lambda: r.sink.named("order.resolved"), 40)
    await r.until(lambda: r.engine.ledger.orders[cid].settled, 20)
    await asyncio.sleep(10 / SPEED)  # the policy looks again: nothing left to hedge
    summary = await r.finish()
    sent = r.sink.named("order.sent")
    assert len(sent) == 1, sent
    assert r.engine.ledger.orders[cid].status is OrderStatus.FILLED
    assert not r.sink.named("order.rejected")
    assert r.venue.exchange.ledger.qty(PERP) == sent[0]["amount"]
    assert summary["delta"]["BTC"]["inside_band"] is True


# ---- 7. stuck orders -------------------------------------------------------------------------


async def test_a_stuck_order_alerts_with_backoff_until_an_operator_resolves_it(
    tmp_path: Path,
) -> None:
    r = Running(quiet_settings(tmp_path, stuck_alert_s=2.0, stuck_alert_max_s=60.0))
    r.venue.inject_unreachable_order()  # the first hedge: lost, and no answer about it ever
    r.start()
    await r.until(lambda: len(r.sink.named("order.stuck")) >= 4, 60)
    stuck = r.sink.named("order.stuck")
    cid = stuck[0]["client_id"]
    ts = [e.ts_ms for e in r.sink.events if e.name == "order.stuck"]
    gaps = [b - a for a, b in itertools.pairwise(ts)]
    assert all(later > earlier for earlier, later in itertools.pairwise(gaps)), gaps
    assert [s["alerts"] for s in stuck] == list(range(1, len(stuck) + 1))
    # Blocked: no second hedge while it is stuck; shown in the state and the metrics.
    assert len(r.sink.named("order.sent")) == 1
    state = r.engine.controls.state()
    assert [s["client_id"] for s in state["stuck_orders"]] == [cid]
    assert state["stuck_orders"][0]["underlying"] == "BTC"
    metrics = Metrics("t")
    metrics.refresh(state)
    assert metrics.registry.get_sample_value("hedgebot_stuck_orders", {"underlying": "BTC"}) == 1

    # Refused without confirm, for an unknown id and for a status an order cannot end as.
    with pytest.raises(CommandError, match="confirm"):
        r.engine.controls.resolve_order(cid, "rejected", False)
    with pytest.raises(CommandError, match="not an order"):
        r.engine.controls.resolve_order("hbnope", "rejected", True)
    with pytest.raises(CommandError, match="status must be one of"):
        r.engine.controls.resolve_order(cid, "open", True)
    cmd = parse_command(
        {
            "id": "r1",
            "cmd": "resolve-order",
            "args": {"client_id": cid, "status": "rejected", "confirm": True},
        }
    )
    args = cmd.args
    result = r.engine.controls.resolve_order(args.client_id, args.status, args.confirm)  # type: ignore[union-attr]
    assert result["status"] == "rejected"
    # Hedging resumes: the drift is hedged by a new order, which fills.
    await r.until(lambda: len(r.sink.named("order.sent")) >= 2, 30)
    await r.until(lambda: not r.engine.ledger.has_unsettled("BTC"), 30)
    assert r.engine.controls.state()["stuck_orders"] == []
    assert r.sink.named("order.unstuck")[0]["client_id"] == cid
    await r.finish()
    db = Journal.open_readonly(tmp_path / "journal.sqlite")
    try:
        assert db.order(cid)["status"] == "rejected"  # type: ignore[index]
        names = [e["name"] for e in db.events_between()]
        assert "order.resolved_by_operator" in names
    finally:
        db.close()


def test_resolve_order_command_needs_an_exact_confirm() -> None:
    base = {"id": "r1", "cmd": "resolve-order"}
    ok = {"client_id": "hbabc", "status": "cancelled", "confirm": True}
    assert parse_command({**base, "args": ok}).cmd == "resolve-order"
    for bad in ({**ok, "confirm": 1}, {**ok, "status": "open"}, {**ok, "client_id": "a b"}):
        with pytest.raises(Exception, match=r"confirm|status|client_id"):
            parse_command({**base, "args": bad})


def test_cancel_on_shutdown_says_what_replaced_it() -> None:
    from bot.config import ConfigError, load_settings

    with pytest.raises(ConfigError) as e:
        load_settings(None, env={"HEDGEBOT_EXECUTION__CANCEL_ON_SHUTDOWN": "true"})
    assert 'replaced by execution.on_shutdown = "cancel"' in e.value.render()
    assert ExecutionConfig().on_shutdown == "cancel"


async def test_recovery_keeps_an_intent_the_venue_does_not_show_yet_in_flight(
    make_rig: Any,  # noqa: F811
) -> None:
    rig = await make_rig()
    venue, journal, now = rig.venue, rig.journal, rig.clock.now_ms()
    venue.hide_new_orders(30_000)  # 30 s of clock, inside the 60 s grace
    ticker = venue.exchange.ticker(PERP)
    intent = OrderIntent("hbslow", "BTC", PERP, Side.BUY, 1.0, "test")
    journal.record_intent(intent, now)
    req = OrderRequest("hbslow", PERP, Side.BUY, 1.0, round((ticker.ask or 0) * 1.001, 1))
    journal.mark_sent(req, now)
    await venue.create_order(req)  # filled at the venue; the dead process never heard back
    await asyncio.sleep(0.02)  # the fill pump sees the fills (the dead process journaled them)
    rig.ex.ledger = rig.ledger = Ledger()  # the restarted process
    emitted: list[str] = []
    rep = await recovery.recover(
        rig.ex, journal, rig.ex.instruments, lambda u: "sim", lambda k, n, **d: emitted.append(n)
    )
    # Not found, but sent within the grace: in flight (in delta), never marked rejected.
    assert rep.pending == ["hbslow"] and rep.never_sent == []
    assert "recovery.not_found_yet" in emitted
    assert rig.ledger.in_flight()[("sim", PERP)] == pytest.approx(1.0)
    assert journal.order("hbslow")["status"] != "rejected"  # type: ignore[index]
    await rig.idle()
    order = rig.ledger.orders["hbslow"]
    assert order.status is OrderStatus.FILLED and order.settled
    assert rig.sink.named("order.resolved")[0]["client_id"] == "hbslow"
    assert journal.order("hbslow")["status"] == "filled"  # type: ignore[index]
    assert journal.in_flight_intents() == []
