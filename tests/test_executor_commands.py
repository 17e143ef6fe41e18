"""The executor's order logic on its own: event methods in, commands out, with nothing carried
out at a venue. The commands are recorded where the driver would carry them out; every answer
is an event the test gives, so each step of the money-safety rules is seen as it is decided."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.clock import LiveClock
from bot.config_execution import ExecutionConfig
from bot.core.orders import Fill, OrderIntent, OrderStatus, OrderUpdate, Side
from bot.events import EventBus
from bot.execution.executor import Executor
from bot.execution.executor.commands import Cancel, Command, LookUp, Send
from bot.execution.ledger import Ledger, TrackedOrder
from bot.venues.base import VenueAmbiguous
from bot.venues.sim import SimVenue
from tests.helpers import Sink
from tests.test_executor import PERP, SPEED, sim_cfg

CID = "hbcmd1"


class Recording(Executor):
    """The order logic with its commands recorded instead of carried out."""

    carried: list[Command]

    def _out(self, commands: list[Command]) -> None:
        self.carried.extend(commands)


async def recording(tmp_path: Path, **cfg: float) -> tuple[Recording, SimVenue, Sink]:
    clock = LiveClock(SPEED)
    venue = SimVenue("sim", sim_cfg(tmp_path), [], clock)
    await venue.connect()
    instruments = {("sim", s): i for s, i in (await venue.load_instruments()).items()}
    sink = Sink()
    ex = Recording(
        {"sim": venue},
        instruments,
        Ledger(),
        EventBus(sink),
        clock,
        ExecutionConfig(**{"order_timeout_s": 5.0, **cfg}),
    )
    ex.carried = []
    return ex, venue, sink


def submit(ex: Executor, venue: SimVenue) -> TrackedOrder:
    order = ex.submit(
        "sim",
        OrderIntent(CID, "BTC", PERP, Side.BUY, 1.0, "test"),
        venue.exchange.ticker(PERP),
        venue.exchange.books[PERP],
    )
    assert order is not None and order.request is not None
    return order


def update(ex: Executor, status: OrderStatus, filled: float) -> OrderUpdate:
    return OrderUpdate(CID, PERP, Side.BUY, 1.0, filled, status, ex.clock.now_ms(), 60_000.0)


async def test_an_ambiguous_create_is_looked_up_and_never_sent_again(tmp_path: Path) -> None:
    ex, venue, sink = await recording(tmp_path, lookup_grace_s=60.0)
    try:
        order = submit(ex, venue)
        assert ex.carried == [Send("sim", order.request)]  # type: ignore[arg-type]
        assert order.status is OrderStatus.SENT  # in the ledger and marked before it goes out
        look_up = LookUp("sim", CID, PERP)
        assert ex.on_create_result(CID, None, VenueAmbiguous("lost response")) == [look_up]
        # Not found yet, within the grace: still in flight, asked again after a pause.
        assert ex.on_lookup_result(CID, None, None) == []
        assert sink.named("order.not_found_yet") and ex.ledger.has_unsettled("BTC")
        await asyncio.sleep(0.05)  # 2.5 clock s: past the first poll (0.2 s)
        assert ex.carried[1:] == [look_up]
        assert ex.on_lookup_result(CID, update(ex, OrderStatus.FILLED, 1.0), None) == []
        assert ex.busy  # final, but its fill is not booked yet
        ex.on_fill("sim", Fill(CID, PERP, Side.BUY, 1.0, 60_000.0, 0.0, "USDT", 0, "t1"))
        await asyncio.sleep(0.01)
        assert not ex.busy and order.settled
        assert [type(c) for c in ex.carried].count(Send) == 1
        assert sink.named("order.done")[0]["status"] == "filled"
    finally:
        await ex.close()
        await venue.close()


async def test_an_order_still_open_after_its_timeout_is_cancelled(tmp_path: Path) -> None:
    ex, venue, sink = await recording(tmp_path)
    try:
        order = submit(ex, venue)
        assert ex.on_create_result(CID, update(ex, OrderStatus.OPEN, 0.0), None) == []
        await asyncio.sleep(0.05)  # 2.5 clock s: within order_timeout_s
        assert len(ex.carried) == 1
        await asyncio.sleep(0.1)  # past it
        assert ex.carried[1:] == [Cancel("sim", CID, PERP)]
        assert ex.on_cancel_result(CID, update(ex, OrderStatus.CANCELLED, 0.0), None) == []
        assert order.status is OrderStatus.CANCELLED and order.settled and not ex.busy
        assert sink.named("order.done")[0]["status"] == "cancelled"
    finally:
        await ex.close()
        await venue.close()
