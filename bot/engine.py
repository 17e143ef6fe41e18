"""The engine: the asyncio shell around the synchronous hedger.

It wires the parts and runs them: venues connected and their instruments loaded, restart
recovery, the first REST reconciliation, one supervised task per stream (bot/shell/streams.py),
the position-stream watch (bot/shell/positions.py), periodic reconciliation
(bot/shell/reconcile.py), a heartbeat, and the decision loop that asks the hedger
(bot/hedger/hedger.py) to decide whenever something it depends on changed. Operator controls
(bot/operator.py) act on the same hedger.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import structlog

from bot import logs
from bot.clock import Clock
from bot.config import Settings
from bot.core.book import Exposure, LineKey
from bot.core.instruments import Instrument
from bot.events import EventBus
from bot.execution import recovery
from bot.execution.ledger import Ledger
from bot.hedger.hedger import Hedger
from bot.io.journal import Journal
from bot.operator import OperatorControls
from bot.shell.funding import FundingWatch
from bot.shell.positions import PositionWatch
from bot.shell.reconcile import Reconciler
from bot.shell.status import PnlStatus
from bot.shell.streams import RESUBSCRIBED_S, Streams
from bot.tasks import cancel_all
from bot.venues.base import Venue, VenueError

log = structlog.get_logger("hedgebot.engine")

# Clock seconds between heartbeats: staleness and the kill file are looked at even when no
# data arrives.
HEARTBEAT_S = 1.0


class Engine:
    def __init__(
        self,
        settings: Settings,
        venues: Mapping[str, Venue],
        clock: Clock,
        bus: EventBus,
        config_path: Path | None = None,
        secrets_file: Path | None = None,
        journal: Journal | None = None,
    ) -> None:
        self.venues = dict(venues)
        self.clock = clock
        self.journal = journal
        self.catalog: dict[LineKey, Instrument] = {}  # filled by start()
        self._wake = asyncio.Event()
        self._closing = asyncio.Event()
        self.hedger = Hedger(
            settings,
            self.venues,
            self.catalog,
            clock,
            bus,
            journal,
            wake=self._wake.set,
            request_reconcile=self._reconcile_soon,
        )
        self.positions = PositionWatch(
            self.venues, self.hedger, int(RESUBSCRIBED_S * 1000), self._reconcile_soon
        )
        self.reconciler = Reconciler(self.venues, self.hedger, self.positions, clock, journal)
        self.pnl = PnlStatus(self.hedger, set(self.venues), self.reconciler.balances)
        bus.add(self.pnl)
        self.streams = Streams(
            self.venues,
            self.hedger,
            clock,
            on_positions=self.positions.on_positions,
            reconcile_soon=self._reconcile_soon,
        )
        self.funding = FundingWatch(self.venues, self.hedger, clock)
        self.controls = OperatorControls(
            self.hedger, self.streams.watch_ticker, config_path, secrets_file
        )

    @property
    def settings(self) -> Settings:
        return self.hedger.settings

    @property
    def ledger(self) -> Ledger:
        return self.hedger.ledger

    def _reconcile_soon(self) -> None:
        self.reconciler.soon()

    def exposure(self, underlying: str) -> Exposure | None:
        return self.hedger.exposure(underlying)

    # ---- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        h = self.hedger
        for name, venue in self.venues.items():
            acc = self.settings.accounts[name]
            # Loud on purpose: a live account sends real orders. Alerts log at warning level.
            h.emit(
                "alert" if acc.mode == "live" else "state",
                "account.mode",
                account=name,
                exchange=acc.exchange,
                mode=acc.mode,
                real_orders=acc.mode == "live",
                venue=type(venue).__name__,
            )
            await venue.connect()
            for symbol, ins in (await venue.load_instruments()).items():
                self.catalog[(name, symbol)] = ins
        logs.register_steps((s, i.price_step, i.amount_step) for (_, s), i in self.catalog.items())
        for key in h.add_hedge_lines():
            self.streams.watch_book(key)
        # Before any decision: settle what the journal says was in flight (recovery books its
        # fills once); the initial reconciliation then adopts the venue's positions.
        if self.journal is not None:
            await recovery.recover(h.executor, self.journal, self.catalog, h.hedge_account, h.emit)
            h.cross.restore(self.journal.decisions_between())  # cross shares held before
        await self.reconciler.reconcile(initial=True)
        await recovery.report_unknown_orders(self.venues, h.executor, self.journal, h.emit)
        for name, venue in self.venues.items():
            self.streams.start_account(name, venue)
        self.streams.spawn(self.reconciler.loop(self._closing))
        if h.router.perp_lines():
            await self.funding.refresh()  # rates known before the first routed order
            self.streams.spawn(self.funding.loop(self._closing))
        self.streams.spawn(self._heartbeat())
        h.emit("state", "engine.started", underlyings=sorted(self.settings.hedge))

    async def run(self, stop: asyncio.Event) -> dict[str, Any]:
        """Decide until `stop` is set; then shut down cleanly and return the summary."""
        try:
            await self.start()
        except BaseException as e:
            # Nothing traded yet: close the connections (no warnings about unclosed sessions)
            # and let the caller report why; a supervisor restarts the daemon. A Ctrl-C or a
            # cancel during start closes them too, but is no failure.
            if isinstance(e, Exception):
                log.error("daemon.start_failed", error=str(e) or repr(e))
            await self._close_venues()
            raise
        try:
            while not stop.is_set():
                waiter = asyncio.ensure_future(self._wake.wait())
                stopper = asyncio.ensure_future(stop.wait())
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
                waiter.cancel()
                stopper.cancel()
                self._wake.clear()
                if stop.is_set():
                    break
                self.hedger.decide_dirty()
        finally:
            summary = await self.shutdown()
        return summary

    async def shutdown(self) -> dict[str, Any]:
        h = self.hedger
        mode = self.settings.execution.on_shutdown
        h.emit("state", "engine.stopping", on_shutdown=mode)
        if mode == "finish":
            await h.executor.finish()  # bounded, then cancels what is left
        else:
            await h.executor.cancel_all()
        open_left = 0
        for name, venue in self.venues.items():
            try:
                open_orders = await self.reconciler.bounded(venue.fetch_open_orders())
                open_left += sum(1 for o in open_orders if o.client_id in h.ledger.orders)
            except (VenueError, TimeoutError) as e:
                log.warning("shutdown.open_orders_unknown", account=name, error=repr(e))
                open_left = -1
        self._closing.set()
        self.streams.closing = True
        await cancel_all(self.streams.tasks)
        await h.executor.close()
        summary = h.report.summary(open_left)
        h.emit("state", "daemon.summary", **summary)
        await self._close_venues()
        return summary

    async def _close_venues(self) -> None:
        for venue in self.venues.values():
            try:
                await venue.close()
            except Exception as e:
                log.warning("venue.close_failed", venue=venue.name, error=repr(e))

    async def _heartbeat(self) -> None:
        """Re-evaluates every HEARTBEAT_S so staleness halts trading even when no data arrives."""
        h = self.hedger
        last_summary = self.clock.now_ms()
        while not self._closing.is_set():
            for key in list(h.view.lines):
                self.streams.watch_ticker(key)
            self.controls.check_kill_file()
            self.positions.check(self.clock.now_ms())
            await self.clock.sleep(HEARTBEAT_S)
            h.mark_all_dirty()
            self.pnl.ensure_start()
            now = self.clock.now_ms()
            if now - last_summary >= self.settings.engine.summary_interval_s * 1000:
                last_summary = now
                working = sum(1 for o in h.ledger.unsettled() if not o.status.is_terminal)
                h.emit("state", "daemon.status", **h.report.summary(working), **self.pnl.report())
