"""Stream supervision: one task per venue stream, every await bounded, backoff with jitter,
resubscribe on error; what arrives goes to the hedger, and its health to the hedger's FeedHealth.

Market streams (ticker, book) and the position poll are expected to speak all the time: quiet
beyond their kind's limit is staleness. Account streams (orders, fills, positions) are quiet
whenever nothing happens, so quiet alone proves nothing (see bot/shell/positions.py for how a
silent position stream is caught). Venues without a position stream are polled instead.
"""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import TypeVar

import structlog

from bot.clock import Clock
from bot.core.book import LineKey
from bot.core.orders import PositionReport
from bot.hedger.feeds import FeedState, stale_limit_s
from bot.hedger.hedger import Hedger
from bot.venues.base import Venue, VenueNotSupported

log = structlog.get_logger("hedgebot.streams")
T = TypeVar("T")

# Seconds a quiet account stream's watch must neither fail nor answer to count as resubscribed.
RESUBSCRIBED_S = 2.0


class Streams:
    def __init__(
        self,
        venues: Mapping[str, Venue],
        hedger: Hedger,
        clock: Clock,
        *,
        on_positions: Callable[[str, Sequence[PositionReport]], None],
        reconcile_soon: Callable[[], None],
    ) -> None:
        self.venues = venues
        self.hedger = hedger
        self.clock = clock
        self._on_positions = on_positions
        self._reconcile_soon = reconcile_soon
        self.tasks: list[asyncio.Future[None]] = []
        self.closing = False
        self._watched: set[LineKey] = set()

    def spawn(self, coro: Awaitable[None]) -> None:
        self.tasks.append(asyncio.ensure_future(coro))

    def start_account(self, name: str, venue: Venue) -> None:
        h = self.hedger
        self.spawn(self._stream(name, "orders", venue.watch_orders, h.on_orders, False))
        self.spawn(self._stream(name, "fills", venue.watch_fills, h.on_fills, False))
        self.spawn(
            self._stream(name, "positions", venue.watch_positions, self._on_positions, False)
        )

    def watch_ticker(self, key: LineKey) -> None:
        if key in self._watched or key[0] not in self.venues:
            return
        self._watched.add(key)  # kept after an expiry ends the stream: never watched again
        venue = self.venues[key[0]]
        ins = self.hedger.catalog.get(key)
        self.spawn(
            self._stream(
                key[0],
                f"ticker:{key[1]}",
                lambda: venue.watch_ticker(key[1]),
                self.hedger.on_ticker,
                True,
                stale_limit_s(self.hedger.settings.engine, "ticker"),
                ends_ms=ins.expiry_ms if ins is not None else None,
            )
        )

    def watch_book(self, key: LineKey) -> None:
        venue = self.venues[key[0]]
        self.spawn(
            self._stream(
                key[0],
                f"book:{key[1]}",
                lambda: venue.watch_order_book(key[1]),
                self.hedger.on_book,
                True,
                stale_limit_s(self.hedger.settings.engine, "book"),
            )
        )

    def poll_positions(self, account: str) -> None:
        """REST positions every engine.position_poll_s where the venue has no position stream
        (Deribit: has['watchPositions'] is false), supervised like a stream: a failed or late
        poll marks the feed down and halts the underlyings depending on the account."""
        venue = self.venues[account]
        interval = self.hedger.settings.engine.position_poll_s

        async def poll() -> Sequence[PositionReport]:
            await self.clock.sleep(interval)
            return await venue.fetch_positions()

        log.info("stream.polling", account=account, stream="positions", interval_s=interval)
        self.spawn(
            self._stream(
                account,
                "positions_poll",
                poll,
                self._on_positions,
                True,
                stale_limit_s(self.hedger.settings.engine, "positions_poll"),
            )
        )

    async def _stream(
        self,
        account: str,
        name: str,
        watch: Callable[[], Awaitable[T]],
        handle: Callable[[str, T], None],
        quiet_is_stale: bool,
        timeout_s: float | None = None,
        ends_ms: int | None = None,
    ) -> None:
        """One supervised stream. `timeout_s` (clock seconds) bounds each await; by default
        engine.stale_after_s. `ends_ms`: the instrument's expiry, when the stream ends (its
        feed is dropped, so it neither goes stale nor halts the underlying)."""
        health = self.hedger.feeds
        feed = health.register((account, name), self.clock.now_ms())
        limit = timeout_s or self.hedger.settings.engine.stale_after_s
        backoff = 0.5
        while not self.closing:
            now = self.clock.now_ms()
            if ends_ms is not None and now >= ends_ms:
                health.remove((account, name))
                log.info("stream.ended", account=account, stream=name, reason="expired")
                self.hedger.mark_all_dirty()
                return
            # After an error a quiet stream is probed with a short bound: see below.
            probing = feed.error is not None and not quiet_is_stale
            if feed.watching_since_ms is None:
                feed.watching_since_ms = now
            bound = min(limit, RESUBSCRIBED_S) if probing else limit
            to_expiry = (ends_ms - now) / 1000.0 if ends_ms is not None else math.inf
            try:
                data = await self.clock.wait_for(watch(), min(bound, to_expiry))
            except TimeoutError:
                if to_expiry <= bound:
                    continue  # woken for the expiry (ends above), not a quiet stream
                self._quiet(account, name, feed, quiet_is_stale, probing)
                continue
            except VenueNotSupported:
                log.info("stream.not_supported", account=account, stream=name)
                health.remove((account, name))
                if name == "positions":
                    self.poll_positions(account)
                return
            except asyncio.CancelledError:
                raise
            except Exception as e:
                if ends_ms is not None and self.clock.now_ms() >= ends_ms:
                    continue  # expired: the venue refuses it now (ends above)
                backoff = await self._failed(account, name, feed, e, backoff)
                continue
            backoff = 0.5
            if feed.error is not None:
                self._recovered(account, name, feed)
            health.data(feed, self.clock.now_ms())
            try:
                handle(account, data)
            except Exception as e:  # malformed data is logged and dropped, never fatal
                log.exception("stream.handler_failed", account=account, stream=name, error=repr(e))

    def _quiet(
        self, account: str, name: str, feed: FeedState, quiet_is_stale: bool, probing: bool
    ) -> None:
        """A watch that gave nothing within its bound: stale for a market stream or a poll."""
        if quiet_is_stale:
            self.hedger.feeds.failed(feed, "timeout")
            self.hedger.mark_all_dirty()
        elif probing:
            # An account stream (orders, fills, positions) is quiet while nothing
            # happens, so after a reconnect no data may ever come to prove it back. A
            # watch that neither fails nor answers for RESUBSCRIBED_S has connected and
            # subscribed (ccxt fails a connect or a subscribe at once): it is back.
            self._recovered(account, name, feed)

    async def _failed(
        self, account: str, name: str, feed: FeedState, e: Exception, backoff: float
    ) -> float:
        """A watch failed: the feed is down and alerted on; wait the jittered backoff before
        resubscribing. The next backoff."""
        self.hedger.feeds.failed(feed, repr(e))
        feed.watching_since_ms = None
        self.hedger.emit("alert", "stream.error", account=account, stream=name, error=repr(e))
        self.hedger.mark_all_dirty()
        await self.clock.sleep(backoff * (0.5 + random.random()))
        if name == "positions":
            self._reconcile_soon()
        return min(backoff * 2, 30.0)

    def _recovered(self, account: str, name: str, feed: FeedState) -> None:
        self.hedger.feeds.failed(feed, None)
        self.hedger.emit("state", "stream.recovered", account=account, stream=name)
        if name in ("orders", "fills", "positions"):
            self._reconcile_soon()  # after every reconnect: the REST view wins
        self.hedger.mark_all_dirty()
