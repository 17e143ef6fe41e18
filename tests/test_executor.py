"""The executor against the real simulated exchange and a real SQLite journal: each guard,
each mode, the lifecycle, and restart recovery."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest

from bot.clock import LiveClock
from bot.config_execution import ExecutionConfig
from bot.config_sim import SimConfig, SimUnderlying
from bot.core.orders import Fill, OrderIntent, OrderRequest, OrderStatus, Side
from bot.events import EventBus
from bot.execution import recovery
from bot.execution.executor import TRANSITIONS, Executor, can_transition
from bot.execution.ledger import Ledger
from bot.io.journal import Journal
from bot.venues.sim import SimVenue
from tests.helpers import Sink

PERP = "BTC/USDT:USDT"
SPEED = 50.0


@dataclass
class Rig:
    venue: SimVenue
    ex: Executor
    ledger: Ledger
    journal: Journal
    sink: Sink
    clock: LiveClock
    tasks: list[asyncio.Task[None]] = field(default_factory=list)

    def intent(self, amount: float, side: Side = Side.BUY, cid: str = "hbtest1") -> OrderIntent:
        return OrderIntent(cid, "BTC", PERP, side, amount, "test")

    def submit(self, intent: OrderIntent, with_book: bool = True) -> Any:
        ticker = self.venue.exchange.ticker(PERP)
        book = self.venue.exchange.books[PERP] if with_book else None
        return self.ex.submit("sim", intent, ticker, book)

    async def idle(self, limit_s: float = 20.0) -> None:
        """Until the executor has no order task left (bounded)."""
        await self.ex.until_idle(limit_s)
        assert not self.ex.busy, "executor still busy"


def sim_cfg(tmp_path: Path, **over: Any) -> SimConfig:
    base: dict[str, Any] = {
        "seed": 3,
        "tick_ms": 1000,
        "latency_ms": 20,
        # 1 BTC per level, levels 1 bp apart, spread 2 bp: taking 5 BTC averages 3 bp.
        "level_notional_usd": 60_000.0,
        "level_step_bps": 1.0,
        "spread_bps": 2.0,
        "underlyings": {"BTC": SimUnderlying(price=60_000.0, vol=0.001, jump_intensity=0.0)},
        "state_file": tmp_path / "sim.json",
    }
    base.update(over)
    return SimConfig(**base)


@pytest.fixture
async def make_rig(tmp_path: Path) -> AsyncIterator[Callable[..., Any]]:
    rigs: list[Rig] = []

    async def make(exec_over: dict[str, Any] | None = None, **sim_over: Any) -> Rig:
        clock = LiveClock(SPEED)
        venue = SimVenue("sim", sim_cfg(tmp_path, **sim_over), [], clock)
        await venue.connect()
        instruments = {("sim", s): i for s, i in (await venue.load_instruments()).items()}
        sink = Sink()
        ledger = Ledger()
        journal = Journal(tmp_path / "journal.sqlite")
        cfg = ExecutionConfig(**{"order_timeout_s": 5.0, **(exec_over or {})})
        books: dict[tuple[str, str], Any] = {}
        ex = Executor(
            {"sim": venue}, instruments, ledger, EventBus(sink), clock, cfg, journal, books=books
        )
        rig = Rig(venue, ex, ledger, journal, sink, clock)

        async def pump_fills() -> None:
            while True:
                for f in await venue.watch_fills():
                    ex.on_fill("sim", f)

        async def pump_orders() -> None:
            while True:
                for u in await venue.watch_orders():
                    ex.on_update("sim", u)

        async def pump_books() -> None:
            while True:
                b = await venue.watch_order_book(PERP)
                books[("sim", PERP)] = b

        rig.tasks = [
            asyncio.create_task(pump_fills()),
            asyncio.create_task(pump_orders()),
            asyncio.create_task(pump_books()),
        ]
        rigs.append(rig)
        return rig

    yield make
    for rig in rigs:
        await rig.ex.close()
        for t in rig.tasks:
            t.cancel()
        await asyncio.gather(*rig.tasks, return_exceptions=True)
        await rig.venue.close()
        rig.journal.close()


# ---- lifecycle ---------------------------------------------------------------------------


def test_lifecycle_transitions_are_explicit() -> None:
    S = OrderStatus
    assert can_transition(S.CREATED, S.SENT)
    assert can_transition(S.SENT, S.OPEN)
    assert can_transition(S.OPEN, S.PARTIALLY_FILLED)
    assert can_transition(S.PARTIALLY_FILLED, S.FILLED)
    assert can_transition(S.SENT, S.FILLED)  # an ack may already say filled
    assert can_transition(S.OPEN, S.OPEN)
    for terminal in (S.FILLED, S.CANCELLED, S.REJECTED, S.EXPIRED):
        assert TRANSITIONS[terminal] == frozenset()
        assert not can_transition(terminal, S.OPEN)
    assert not can_transition(S.PARTIALLY_FILLED, S.OPEN)
    assert not can_transition(S.OPEN, S.SENT)
    assert set(TRANSITIONS) == set(S)


async def test_taker_order_walks_through_the_lifecycle(make_rig: Any) -> None:
    rig = await make_rig()
    order = rig.submit(rig.intent(2.0))
    assert order is not None
    # Journaled and in the ledger (counted in delta) before anything was sent.
    assert rig.journal.intent("hbtest1") is not None
    assert rig.ledger.in_flight()[("sim", PERP)] == pytest.approx(2.0)
    await rig.idle()
    assert order.status is OrderStatus.FILLED and order.settled
    assert rig.ledger.positions[("sim", PERP)] == pytest.approx(2.0)
    statuses = [(e["before"], e["status"]) for e in rig.sink.named("order.status")]
    assert statuses[0][0] == "sent" and statuses[-1][1] == "filled"
    events = rig.journal.order_events("hbtest1")
    assert events[0]["status"] == "sent"
    assert rig.journal.order("hbtest1")["status"] == "filled"  # type: ignore[index]
    sent = rig.sink.named("order.sent")[0]
    assert sent["expected_cost_bps"] > 0 and sent["expected_fee_usd"] > 0


# ---- taker guards --------------------------------------------------------------------------


async def test_taker_shrinks_to_what_fits_the_slippage_cap(make_rig: Any) -> None:
    rig = await make_rig({"max_slippage_bps": 2.0, "on_slippage": "shrink"})
    order = rig.submit(rig.intent(5.0))
    assert order is not None
    shrunk = rig.sink.named("order.shrunk")
    assert len(shrunk) == 1
    assert shrunk[0]["requested"] == 5.0
    # levels at 1, 2, 3, 4, 5 bp: three of them average 2 bp (less a hair: prices are on ticks)
    amount = shrunk[0]["amount"]
    assert 2.9 <= amount <= 3.0
    assert shrunk[0]["slippage_bps"] <= 2.0 + 1e-9
    await rig.idle()
    fills = rig.journal.fills_for("hbtest1")
    assert sum(f.amount for f in fills) == pytest.approx(amount)
    assert rig.sink.named("order.sent")[0]["amount"] == amount
    mid = rig.sink.named("order.sent")[0]["mid"]
    avg = sum(f.amount * f.price for f in fills) / amount
    assert (avg - mid) / mid * 1e4 <= 2.0 + 0.05


async def test_taker_refuses_when_configured(make_rig: Any) -> None:
    rig = await make_rig({"max_slippage_bps": 2.0, "on_slippage": "refuse"})
    assert rig.submit(rig.intent(5.0)) is None
    refused = rig.sink.named("order.refused")
    assert refused[0]["rule"] == "max_slippage"
    assert refused[0]["requested"] == 5.0 and 2.9 <= refused[0]["fits"] <= 3.0
    assert refused[0]["slippage_bps"] > 2.0
    # nothing journaled, nothing in flight, nothing at the venue
    assert rig.journal.intent("hbtest1") is None
    assert rig.ledger.in_flight() == {}
    assert rig.venue.exchange.orders == {}


async def test_no_book_is_refused_unless_allowed(make_rig: Any) -> None:
    rig = await make_rig()
    assert rig.submit(rig.intent(1.0), with_book=False) is None
    assert rig.sink.named("order.refused")[0]["rule"] == "no_book"
    rig.ex.cfg = ExecutionConfig(allow_no_book=True, order_timeout_s=5.0)
    order = rig.submit(rig.intent(1.0, cid="hbtest2"), with_book=False)
    assert order is not None
    await rig.idle()
    assert order.status is OrderStatus.FILLED


async def test_a_ticker_without_a_mid_and_no_book_is_refused(make_rig: Any) -> None:
    """A ticker without bid, mark or last, and no fresh book: refused as no_mid, in one event
    that names the symbol once (it was passed twice, which raised TypeError out of submit)."""
    rig = await make_rig()
    rig.ex.books = {}
    one_sided = replace(rig.venue.exchange.ticker(PERP), bid=None, mark=None, last=None)
    assert one_sided.mid is None
    assert rig.ex.submit("sim", rig.intent(1.0), one_sided, None) is None
    r = rig.sink.named("order.refused")[0]
    assert (r["rule"], r["symbol"], r["amount"]) == ("no_mid", PERP, 1.0)
    assert rig.ex.orders_refused == 1 and list(rig.ledger.unsettled()) == []


async def test_stale_book_counts_as_no_book(make_rig: Any) -> None:
    rig = await make_rig({"book_max_age_s": 1.0})
    rig.tasks[2].cancel()  # the book stream goes quiet
    rig.ex.books = {}
    stale = rig.venue.exchange.books[PERP]
    await asyncio.sleep(3.0 / SPEED)
    ticker = rig.venue.exchange.ticker(PERP)
    assert rig.ex.submit("sim", rig.intent(1.0), ticker, stale) is None
    assert rig.sink.named("order.refused")[0]["rule"] == "no_book"


async def test_cost_guard_max_cost_bps(make_rig: Any) -> None:
    rig = await make_rig({"max_cost_bps": 3.0})  # taker fee alone is 5 bp
    assert rig.submit(rig.intent(1.0)) is None
    r = rig.sink.named("order.refused")[0]
    assert r["rule"] == "max_cost_bps"
    assert r["cost_bps"] == pytest.approx(6.0, abs=0.2)  # 5 bp fee + 1 bp half spread
    assert r["fee_usd"] == pytest.approx(30.0, rel=0.01) and r["max_cost_bps"] == 3.0


async def test_cost_guard_cost_versus_risk(make_rig: Any) -> None:
    # 1 BTC at 60k, sigma 0.6 over 60 s removes ~ 60000 x 0.6 x sqrt(60 s / 1 y) = 49.6 USD of
    # risk; the order costs ~36 USD: refused at ratio 0.5, sent at ratio 1.
    rig = await make_rig({"cost_horizon_s": 60.0, "cost_risk_ratio": 0.5})
    assert rig.submit(rig.intent(1.0)) is None
    r = rig.sink.named("order.refused")[0]
    assert r["rule"] == "cost_vs_risk"
    assert r["risk_removed_usd"] == pytest.approx(49.6, rel=0.02)
    assert r["cost_usd"] > 0.5 * r["risk_removed_usd"]
    rig.ex.cfg = ExecutionConfig(cost_horizon_s=60.0, cost_risk_ratio=1.0, order_timeout_s=5.0)
    assert rig.submit(rig.intent(1.0, cid="hbtest2")) is not None
    await rig.idle()


async def test_fee_cap(make_rig: Any) -> None:
    rig = await make_rig({"max_fee_bps": 4.0})
    assert rig.submit(rig.intent(1.0)) is None
    r = rig.sink.named("order.refused")[0]
    assert r["rule"] == "fee_cap" and r["fee_bps"] == pytest.approx(5.0)


async def test_per_instrument_override(make_rig: Any) -> None:
    rig = await make_rig(
        {
            "max_slippage_bps": 50.0,
            "instruments": {PERP.lower(): {"on_slippage": "refuse", "max_slippage_bps": 2.0}},
        }
    )
    assert rig.submit(rig.intent(5.0)) is None
    assert rig.sink.named("order.refused")[0]["max_slippage_bps"] == 2.0


# ---- maker_first ---------------------------------------------------------------------------


async def test_maker_first_reprices_then_falls_back_to_taker(make_rig: Any) -> None:
    rig = await make_rig(
        {
            "mode": "maker_first",
            "maker_reprices": 2,
            "maker_reprice_s": 1.0,
            "maker_timeout_s": 30.0,
        }
    )
    parent = rig.submit(rig.intent(1.0))
    assert parent is not None
    # The whole intent counts in flight at once, before any child is sent.
    assert rig.ledger.in_flight()[("sim", PERP)] == pytest.approx(1.0)
    await rig.idle()
    sent = rig.sink.named("order.sent")
    ids = [s["client_id"] for s in sent]
    # A quiet market never trades through a resting bid: three post-only tries, then the taker.
    assert ids == ["hbtest1m1", "hbtest1m2", "hbtest1m3", "hbtest1t"]
    assert [s["post_only"] for s in sent] == [True, True, True, False]
    ticker_bids = [s["price"] for s in sent[:3]]
    assert all(p < sent[3]["price"] for p in ticker_bids)  # at the touch, below the taker
    assert len(rig.sink.named("order.maker_fallback")) == 1
    for cid in ids:  # every child was journaled as its own intent before it was sent
        assert rig.journal.intent(cid) is not None
    for cid in ids[:3]:
        assert rig.journal.order(cid)["status"] == "cancelled"  # type: ignore[index]
    assert rig.ledger.positions[("sim", PERP)] == pytest.approx(1.0)
    assert rig.ledger.in_flight() == {}
    assert "hbtest1" not in rig.ledger.orders  # the reservation is released
    assert rig.sink.named("order.parent_done")[0]["filled"] == pytest.approx(1.0)


async def test_maker_first_fills_as_maker_when_the_market_comes(make_rig: Any) -> None:
    # A volatile market trades through the resting order: no taker fallback needed.
    rig = await make_rig(
        {
            "mode": "maker_first",
            "maker_reprices": 20,
            "maker_reprice_s": 3.0,
            "maker_timeout_s": 120.0,
        },
        underlyings={"BTC": SimUnderlying(price=60_000.0, vol=3.0, jump_intensity=0.0)},
    )
    assert rig.submit(rig.intent(1.0)) is not None
    await rig.idle(limit_s=30)
    sent = rig.sink.named("order.sent")
    assert all(s["post_only"] for s in sent), sent
    assert rig.ledger.positions[("sim", PERP)] == pytest.approx(1.0)
    assert not rig.sink.named("order.maker_fallback")


# ---- twap ----------------------------------------------------------------------------------


async def test_twap_slices_large_orders(make_rig: Any) -> None:
    rig = await make_rig({"mode": "twap", "twap_depth_fraction": 0.11, "twap_duration_s": 8.0})
    # 20 levels of ~1 BTC visible: slices of at most 2.2 BTC -> 8 BTC in 4 slices.
    parent = rig.submit(rig.intent(8.0))
    assert parent is not None
    assert rig.sink.named("order.parent")[0]["slices"] == 4
    await rig.idle()
    sent = rig.sink.named("order.sent")
    assert [s["client_id"] for s in sent] == [f"hbtest1s{i}" for i in range(1, 5)]
    assert [s["amount"] for s in sent] == [2.0, 2.0, 2.0, 2.0]
    ts = [e.ts_ms for e in rig.sink.events if e.name == "order.sent"]
    assert all(b - a >= 1500 for a, b in itertools.pairwise(ts))  # spread over time
    assert rig.ledger.positions[("sim", PERP)] == pytest.approx(8.0)


async def test_twap_stops_early_when_the_drift_is_gone(make_rig: Any) -> None:
    rig = await make_rig({"mode": "twap", "twap_depth_fraction": 0.11, "twap_duration_s": 8.0})
    key = ("sim", PERP)
    wanted = {"contracts": 8.0}

    def gap_of(underlying: str) -> float:
        # Gap to target counting position and everything in flight, as the engine computes it.
        have = rig.ledger.positions.get(key, 0.0) + rig.ledger.in_flight().get(key, 0.0)
        return wanted["contracts"] - have

    rig.ex.gap_of = gap_of
    assert rig.submit(rig.intent(8.0)) is not None
    # The market moves our way while the first slice works: only 3 contracts are needed now.
    wanted["contracts"] = 3.0
    await rig.idle()
    sent = rig.sink.named("order.sent")
    assert [s["amount"] for s in sent] == [2.0, 1.0]  # the second slice is trimmed to the need
    stopped = rig.sink.named("twap.stopped")
    assert len(stopped) == 1 and stopped[0]["reason"] == "drift_gone"
    assert stopped[0]["slice"] == 3 and stopped[0]["need"] == pytest.approx(0.0)
    assert rig.ledger.positions[key] == pytest.approx(3.0)
    assert rig.ledger.in_flight() == {}


async def test_twap_small_order_is_one_taker_order(make_rig: Any) -> None:
    rig = await make_rig({"mode": "twap", "twap_depth_fraction": 0.5})
    assert rig.submit(rig.intent(1.0)) is not None
    await rig.idle()
    assert [s["client_id"] for s in rig.sink.named("order.sent")] == ["hbtest1"]


# ---- ambiguous creates -----------------------------------------------------------------------


async def test_lost_request_resolves_to_rejected_without_resend(make_rig: Any) -> None:
    rig = await make_rig({"order_timeout_s": 2.0})
    rig.venue.inject_lost_request()
    order = rig.submit(rig.intent(1.0))
    await rig.idle()
    assert order.status is OrderStatus.REJECTED
    assert len(rig.sink.named("order.sent")) == 1
    assert rig.venue.exchange.orders == {}


async def test_lost_response_resolves_by_lookup(make_rig: Any) -> None:
    rig = await make_rig()
    rig.venue.inject_lost_response()
    order = rig.submit(rig.intent(1.0))
    await rig.idle()
    assert order.status is OrderStatus.FILLED
    assert rig.sink.named("order.resolved")[0]["client_id"] == "hbtest1"
    assert len(rig.venue.exchange.orders) == 1


# ---- recovery ------------------------------------------------------------------------------


async def test_recovery_settles_in_flight_intents_once(make_rig: Any, tmp_path: Path) -> None:
    # No grace: "not found" at once means never arrived (the grace has its own tests).
    rig = await make_rig({"lookup_grace_s": 0.0})
    venue, journal, now = rig.venue, rig.journal, rig.clock.now_ms()
    ticker = venue.exchange.ticker(PERP)
    mk = lambda cid, amt: OrderIntent(cid, "BTC", PERP, Side.BUY, amt, "test")  # noqa: E731

    # 1. journaled and marked sent, but the crash came before the venue saw it
    lost = mk("hblost", 1.0)
    journal.record_intent(lost, now)
    journal.mark_sent(OrderRequest("hblost", PERP, Side.BUY, 1.0, ticker.ask or 0.0), now)
    # 2. filled at the venue, fills never booked by the dead process
    done = mk("hbdone", 2.0)
    journal.record_intent(done, now)
    req = OrderRequest("hbdone", PERP, Side.BUY, 2.0, round((ticker.ask or 0) * 1.001, 1))
    journal.mark_sent(req, now)
    await venue.create_order(req)
    # 3. resting at the venue (post-only, below the touch)
    rest = mk("hbrest", 1.0)
    journal.record_intent(rest, now)
    req3 = OrderRequest(
        "hbrest", PERP, Side.BUY, 1.0, round((ticker.bid or 0) * 0.99, 1), post_only=True
    )
    journal.mark_sent(req3, now)
    await venue.create_order(req3)
    # 4. an order with our prefix nobody journaled
    await venue.create_order(
        OrderRequest("hbstranger", PERP, Side.SELL, 1.0, round((ticker.ask or 0) * 1.01, 1))
    )
    await asyncio.sleep(0.1)
    # The restarted process: a fresh ledger and executor on the same journal and venue.
    rig.ledger.orders.clear()
    rig.ledger.positions.clear()
    fresh = Ledger()
    rig.ex.ledger = fresh
    emitted: list[tuple[str, str, dict[str, Any]]] = []

    def emit(kind: str, name: str, **data: Any) -> None:
        emitted.append((kind, name, data))

    rep = await recovery.recover(rig.ex, journal, rig.ex.instruments, lambda u: "sim", emit)
    assert rep.never_sent == ["hblost"]
    assert "hbdone" in rep.finished and "hbrest" in rep.cancelled
    assert journal.order("hblost")["status"] == "rejected"  # type: ignore[index]
    assert journal.in_flight_intents() == []
    assert fresh.orders["hbdone"].settled and fresh.orders["hbdone"].booked == pytest.approx(2.0)
    assert fresh.orders["hbrest"].status is OrderStatus.CANCELLED
    assert "hblost" not in fresh.orders
    # The test's fill pump journaled hbdone's fills before the "restart" (as the dead process
    # would have): recovery credits them to the order (it settles) without moving the position,
    # which the initial reconciliation adopts from the venue.
    assert rep.fills_seen == len(venue.exchange.fills_by_order["hbdone"])
    assert rep.fills_booked == 0
    assert fresh.positions.get(("sim", PERP), 0.0) == 0.0
    # Booking again (a stream or REST redelivery) changes nothing.
    for f in venue.exchange.fills_by_order["hbdone"]:
        assert not rig.ex.on_fill("sim", f)
    assert journal.filled_amount("hbdone") == pytest.approx(2.0)
    # A second recovery finds nothing in flight and books nothing.
    rep2 = await recovery.recover(rig.ex, journal, rig.ex.instruments, lambda u: "sim", emit)
    assert rep2.in_flight == 0 and rep2.fills_booked == 0
    # The stranger is reported, once.
    unknown = await recovery.report_unknown_orders({"sim": venue}, rig.ex, journal, emit)
    assert unknown == ["hbstranger"]
    await recovery.report_unknown_orders({"sim": venue}, rig.ex, journal, emit)
    alerts = [d for k, n, d in emitted if n == "order.unknown_at_venue"]
    assert len(alerts) == 1 and alerts[0]["journaled"] is False


async def test_recovery_keep_mode_works_the_order(make_rig: Any) -> None:
    rig = await make_rig({"recover_open_orders": "keep", "order_timeout_s": 2.0})
    venue, journal, now = rig.venue, rig.journal, rig.clock.now_ms()
    ticker = venue.exchange.ticker(PERP)
    intent = OrderIntent("hbkeep", "BTC", PERP, Side.BUY, 1.0, "test")
    journal.record_intent(intent, now)
    req = OrderRequest(
        "hbkeep", PERP, Side.BUY, 1.0, round((ticker.bid or 0) * 0.99, 1), post_only=True
    )
    journal.mark_sent(req, now)
    await venue.create_order(req)
    rep = await recovery.recover(
        rig.ex, journal, rig.ex.instruments, lambda u: "sim", lambda *a, **k: None
    )
    assert rep.kept == ["hbkeep"]
    # Kept: in flight (counts in delta) until the executor's bounded wait cancels it.
    assert rig.ledger.in_flight()[("sim", PERP)] == pytest.approx(1.0)
    await rig.idle()
    assert rig.ledger.orders["hbkeep"].status is OrderStatus.CANCELLED
    assert rig.ledger.in_flight() == {}


async def test_a_reused_trade_id_is_booked_and_alerted(make_rig: Any) -> None:
    """A venue that hands out a trade id again (a testnet after a reset) for another order:
    the fill moves the position (taken for the old one it would not, and the hedger would send
    the same hedge again) and an alert names it; a replay of either is not booked again."""
    rig = await make_rig()
    first = Fill("hbA", PERP, Side.SELL, 1.0, 60_000.0, 0.0, "USDT", 1, "t-7")
    again = replace(first, client_id="hbB", amount=0.5)
    assert rig.ex.on_fill("sim", first)
    assert rig.ex.on_fill("sim", again)
    assert not rig.ex.on_fill("sim", again) and not rig.ex.on_fill("sim", first)
    assert rig.ledger.positions[("sim", PERP)] == pytest.approx(-1.5)
    (alert,) = rig.sink.named("fill.trade_id_reused")
    assert (alert["trade_id"], alert["client_id"]) == ("t-7", "hbB")
