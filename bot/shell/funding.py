"""Funding rates for routing: each candidate perp's rate read from its venue (ccxt
`fetch_funding_rate`, or the simulated exchange's configured rate) every
`routing.funding_refresh_s` of clock time, stamped with the clock time of the read.

A read that fails or returns an unusable rate keeps the last good one (which goes stale after
`routing.funding_max_age_s` and then counts as zero) and is reported: `funding.read_failed` and
`funding.bad_data` alerts. Funding never blocks trading: it only ranks the candidates.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import replace

import structlog

from bot.clock import Clock
from bot.core.book import LineKey
from bot.hedger.hedger import Hedger
from bot.venues.base import Venue, VenueError

log = structlog.get_logger("hedgebot.funding")


class FundingWatch:
    def __init__(self, venues: Mapping[str, Venue], hedger: Hedger, clock: Clock) -> None:
        self.venues = venues
        self.hedger = hedger
        self.clock = clock

    async def loop(self, closing: asyncio.Event) -> None:
        """After the first `refresh()` (the engine awaits it at start)."""
        while not closing.is_set():
            await self.clock.sleep(self.hedger.settings.routing.funding_refresh_s)
            try:
                await self.refresh()
            except Exception as e:  # never end the loop: rates would go stale for good
                log.exception("funding.error", error=repr(e))

    async def refresh(self) -> None:
        for key in self.hedger.router.perp_lines():
            await self._read(key)

    async def _read(self, key: LineKey) -> None:
        account, symbol = key
        venue = self.venues.get(account)
        if venue is None:
            return
        h = self.hedger
        try:
            rate = await self.clock.wait_for(
                venue.fetch_funding_rate(symbol), h.settings.engine.stale_after_s
            )
        except (VenueError, TimeoutError) as e:
            h.emit("alert", "funding.read_failed", account=account, symbol=symbol, error=repr(e))
            return
        problem = rate.problem()
        if problem is not None:
            h.emit("alert", "funding.bad_data", account=account, symbol=symbol, problem=problem)
            return
        rate = replace(rate, ts_ms=self.clock.now_ms())
        h.router.set_funding(key, rate)
        log.debug(
            "funding.read", account=account, symbol=symbol, rate=rate.rate, hours=rate.interval_h
        )
