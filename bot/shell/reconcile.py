"""REST reconciliation: positions, open orders and balances read from the venue, at start, after
every reconnect, on request and on a timer. The venue wins wherever no order or recent fill of
ours is in flight; a read that lags our own fills is kept as ours (and halts the account if it
lags too long), never adopted, since adopting it would hedge the same drift a second time.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
from collections.abc import Awaitable, Mapping
from typing import TypeVar

import structlog

from bot.clock import Clock
from bot.core.book import LineKey
from bot.core.equity import BalanceBasis
from bot.core.orders import OrderStatus
from bot.execution import recovery
from bot.hedger.hedger import Hedger
from bot.io.journal import Journal
from bot.shell.positions import PositionWatch
from bot.venues.base import Venue, VenueError

log = structlog.get_logger("hedgebot.reconcile")
T = TypeVar("T")

# A fill and the venue's position report can cross in flight; a venue position that disagrees
# with ours is adopted only when no fill on that line is more recent than this.
FILL_SETTLE_MS = 5_000
# A venue position that has not caught up with our fills is not adopted; after this long the
# account stops trading until it does (see Reconciler._lagging_read).
POSITION_LAG_MAX_MS = 300_000


class Reconciler:
    def __init__(
        self,
        venues: Mapping[str, Venue],
        hedger: Hedger,
        positions: PositionWatch,
        clock: Clock,
        journal: Journal | None,
    ) -> None:
        self.venues = venues
        self.hedger = hedger
        self.positions = positions
        self.clock = clock
        self.journal = journal
        self.balances: dict[str, dict[str, float]] = {}  # account -> REST balances
        self._fills_at_balance: dict[str, int] = {}  # ledger fill count at the last read
        self._agreed: dict[LineKey, float] = {}  # venue == ours last time, per line
        self._lagging_since: dict[LineKey, int] = {}  # lines whose venue read lags our fills
        self._now = asyncio.Event()

    def soon(self) -> None:
        """Reconcile at the next chance (a reconnect, data we cannot trust)."""
        self._now.set()

    async def bounded(self, aw: Awaitable[T]) -> T:
        return await self.clock.wait_for(aw, self.hedger.settings.engine.stale_after_s)

    async def loop(self, closing: asyncio.Event) -> None:
        while not closing.is_set():
            with contextlib.suppress(TimeoutError):
                await self.clock.wait_for(
                    self._now.wait(), self.hedger.settings.engine.reconcile_interval_s
                )
            self._now.clear()
            try:
                await self.reconcile()
                await recovery.report_unknown_orders(
                    self.venues, self.hedger.executor, self.journal, self.hedger.emit
                )
            except Exception as e:
                log.exception("reconcile.error", error=repr(e))

    async def reconcile(self, initial: bool = False) -> None:
        """Positions from REST; the venue wins wherever no order or recent fill is in flight."""
        h = self.hedger
        ledger = h.ledger
        now = self.clock.now_ms()
        for name, venue in self.venues.items():
            feed = h.feeds.feeds.get((name, "rest")) or h.feeds.register((name, "rest"), now)
            try:
                reports = await self.bounded(venue.fetch_positions())
            except (VenueError, TimeoutError) as e:
                h.emit("alert", "reconcile.failed", account=name, error=repr(e))
                h.feeds.failed(feed, repr(e))
                if initial:
                    raise
                continue
            bad = [r for r in reports if not math.isfinite(r.qty)]
            if bad:
                # A venue answer we cannot read wins nothing: keep ours, alert, try next time.
                h.emit("alert", "reconcile.bad_data", account=name, symbols=[r.symbol for r in bad])
                h.feeds.failed(feed, "bad position data")
                if initial:
                    raise VenueError(f"{name}: unreadable positions {[r.symbol for r in bad]}")
                continue
            h.feeds.failed(feed, None)
            h.feeds.data(feed, now)
            seen = {(name, r.symbol): r.qty for r in reports}
            for key in set(seen) | {k for k in ledger.positions if k[0] == name}:
                venue_qty = seen.get(key, 0.0)
                ours = ledger.positions.get(key, 0.0)
                if abs(venue_qty - ours) <= 1e-9:
                    self._agrees(key, venue_qty)
                    continue
                busy = any(o.key == key for o in ledger.unsettled())
                recent = now - ledger.last_fill_ms.get(key, 0) < FILL_SETTLE_MS
                if not initial and (busy or recent):
                    continue  # fills in flight: compare again next time
                if not initial and self._lagging_read(key, venue_qty, ours, now):
                    continue
                ledger.adopt_position(key, venue_qty)
                self._agrees(key, venue_qty)
                if not initial:
                    h.emit(
                        "alert",
                        "reconcile.position_diff",
                        account=name,
                        symbol=key[1],
                        venue=venue_qty,
                        ours=ours,
                    )
                h.view.ensure_line(key)
            if not initial:
                await self._orders(name, venue)
            await self._balances(name, venue, initial)
            self.positions.reconciled(name)
        h.mark_all_dirty()

    def _agrees(self, key: LineKey, qty: float) -> None:
        self._agreed[key] = qty
        if self._lagging_since.pop(key, None) is not None:
            h = self.hedger
            h.emit("state", "position.caught_up", account=key[0], symbol=key[1], qty=qty)
            if not any(k[0] == key[0] for k in self._lagging_since):
                h.feeds.remove((key[0], "positions_lag"))

    def _lagging_read(self, key: LineKey, venue_qty: float, ours: float, now: int) -> bool:
        """A venue position between the last one it agreed with us on and ours is a read that
        has not caught up with our own fills (position reads are known to lag, some report 0
        for a while): adopting it would hedge the same drift a second time. Ours is kept; if
        the read still lags after POSITION_LAG_MAX_MS the account stops trading (a stale feed)
        instead of trusting either view."""
        # A line the venue never reported held nothing as far as it said (venues omit zeros).
        base = self._agreed.get(key, 0.0)
        if not min(base, ours) - 1e-9 <= venue_qty <= max(base, ours) + 1e-9:
            return False
        h = self.hedger
        first = self._lagging_since.setdefault(key, now)
        if first == now:
            h.emit(
                "alert",
                "position.lagging",
                account=key[0],
                symbol=key[1],
                venue=venue_qty,
                ours=ours,
                agreed=base,
            )
        if now - first > POSITION_LAG_MAX_MS:
            feed = h.feeds.register((key[0], "positions_lag"), now)
            if feed.error is None:
                h.feeds.failed(feed, f"venue position of {key[1]} lags our fills")
                h.emit(
                    "alert",
                    "position.lag_halt",
                    account=key[0],
                    symbol=key[1],
                    lagging_ms=now - first,
                )
        return True

    async def _orders(self, name: str, venue: Venue) -> None:
        """Orders we hold open that the venue no longer lists open: the venue's final state is
        read by client id and wins (fed to the executor as any update would be)."""
        h = self.hedger
        try:
            listed = {o.client_id for o in await self.bounded(venue.fetch_open_orders())}
        except (VenueError, TimeoutError) as e:
            h.emit("alert", "reconcile.failed", account=name, what="orders", error=repr(e))
            return
        now = self.clock.now_ms()
        for order in list(h.ledger.unsettled()):
            if order.account != name or order.intent.client_id in listed:
                continue
            if order.status not in (OrderStatus.OPEN, OrderStatus.PARTIALLY_FILLED):
                continue  # not acknowledged yet, or terminal and waiting for its fills
            if now - order.updated_ms < FILL_SETTLE_MS:
                continue  # just changed: the listing may predate it
            try:
                update = await self.bounded(
                    venue.fetch_order(order.intent.client_id, order.intent.symbol)
                )
            except (VenueError, TimeoutError) as e:
                log.warning(
                    "reconcile.order_lookup_failed", client_id=order.intent.client_id, error=repr(e)
                )
                continue
            if update is None or not update.status.is_terminal:
                continue
            h.emit(
                "alert",
                "reconcile.order_diff",
                account=name,
                client_id=order.intent.client_id,
                ours=order.status.value,
                venue=update.status.value,
                filled=update.filled,
            )
            h.executor.on_update(name, update)

    async def _balances(self, name: str, venue: Venue, initial: bool) -> None:
        """Balances by REST (no balance stream: REST is the only view). A change with none of
        our fills since the last read is logged: funding, transfers, fees of someone else's
        trades, liquidations."""
        h = self.hedger
        now = self.clock.now_ms()
        try:
            balances = dict(await self.bounded(venue.fetch_balances()))
        except (VenueError, TimeoutError) as e:
            h.emit("alert", "reconcile.failed", account=name, what="balances", error=repr(e))
            return
        before = self.balances.get(name)
        fills = h.ledger.fills_count
        if before is not None and self._fills_at_balance.get(name) == fills:
            changed = {
                c: {"before": before.get(c, 0.0), "venue": balances.get(c, 0.0)}
                for c in sorted(set(before) | set(balances))
                if abs(before.get(c, 0.0) - balances.get(c, 0.0))
                > 1e-9 * max(1.0, abs(before.get(c, 0.0)))
            }
            if changed:
                h.emit("state", "reconcile.balance_diff", account=name, changes=changed)
        self.balances[name] = balances
        self._fills_at_balance[name] = fills
        # The usd view counts the coin held: a read that may race our fills in flight is left
        # out (the estimate from fills goes on) rather than counting a fill twice or never.
        busy = any(o.account == name for o in h.ledger.unsettled()) or any(
            a == name and now - ms < FILL_SETTLE_MS for (a, _), ms in h.ledger.last_fill_ms.items()
        )
        if initial or not busy:
            # ccxt venues say how their total reads (ccxt_profiles); sim and paper hold cash
            basis: BalanceBasis = (
                "equity" if getattr(venue, "balance_basis", "wallet") == "equity" else "wallet"
            )
            h.view.equity.on_read(name, balances, basis, set(h.settings.hedge))
