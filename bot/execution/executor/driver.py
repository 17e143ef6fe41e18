"""The executor's asyncio shell: carries out the commands the synchronous order logic returns
(placement.py, algorithms.py) against the venues, each call bounded by `order_timeout_s` on the
Clock, and feeds every answer (or the error it failed with) back as an event, whose commands it
carries out in turn. It also waits, bounded, for the executor to have no work left."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

from bot.clock import Clock
from bot.core.orders import Fill, OrderUpdate
from bot.execution.executor.commands import Cancel, Command, FetchFills, LookUp, Send
from bot.execution.executor.tracking import log
from bot.tasks import cancel_all
from bot.venues.base import Venue


class Reactor(Protocol):
    """The event methods the answers of the commands go to."""

    def on_create_result(
        self, client_id: str, update: OrderUpdate | None, error: Exception | None
    ) -> list[Command]: ...

    def on_lookup_result(
        self, client_id: str, found: OrderUpdate | None, error: Exception | None
    ) -> list[Command]: ...

    def on_cancel_result(
        self, client_id: str, update: OrderUpdate | None, error: Exception | None
    ) -> list[Command]: ...

    def on_fetch_fills_result(
        self, client_id: str, fills: Sequence[Fill] | None, error: Exception | None
    ) -> list[Command]: ...


class Driver:
    def __init__(
        self,
        venues: Mapping[str, Venue],
        clock: Clock,
        reactor: Reactor,
        timeout_s: Callable[[], float],
    ) -> None:
        """`timeout_s`: the bound of each venue call (`order_timeout_s`, read at each call so a
        reloaded config applies)."""
        self.venues = venues
        self.clock = clock
        self.reactor = reactor
        self.timeout_s = timeout_s
        self._tasks: set[asyncio.Task[None]] = set()
        self._idle: asyncio.Event | None = None

    def carry(self, commands: list[Command]) -> None:
        """Start each command's venue call; its answer comes back as an event."""
        for command in commands:
            task = asyncio.create_task(self._carry(command), name=f"order-{command.client_id}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _carry(self, command: Command) -> None:
        """Carry out `command`, then, in the same task, what its answer asks next: a follow-up
        call goes out at once, as the order's next step would."""
        pending: Command | None = command
        while pending is not None:
            try:
                follow = await self._answer(pending)
            except asyncio.CancelledError:
                raise
            except Exception as e:  # the logic guards its own steps; this is a last resort
                log.exception("order.work_failed", client_id=pending.client_id, error=repr(e))
                return
            pending = follow[0] if follow else None
            self.carry(follow[1:])

    async def _answer(self, command: Command) -> list[Command]:
        venue = self.venues[command.account]
        cid, r, bound = command.client_id, self.reactor, self.timeout_s()
        # Any error is an answer: the logic tells venue errors from surprises.
        if isinstance(command, Send):
            try:
                update = await self.clock.wait_for(venue.create_order(command.request), bound)
            except Exception as e:
                return r.on_create_result(cid, None, e)
            return r.on_create_result(cid, update, None)
        if isinstance(command, LookUp):
            try:
                found = await self.clock.wait_for(venue.fetch_order(cid, command.symbol), bound)
            except Exception as e:
                return r.on_lookup_result(cid, None, e)
            return r.on_lookup_result(cid, found, None)
        if isinstance(command, Cancel):
            try:
                update_ = await self.clock.wait_for(venue.cancel_order(cid, command.symbol), bound)
            except Exception as e:
                return r.on_cancel_result(cid, None, e)
            return r.on_cancel_result(cid, update_, None)
        assert isinstance(command, FetchFills)
        try:
            fills = await self.clock.wait_for(venue.fetch_fills(cid, command.symbol), bound)
        except Exception as e:
            return r.on_fetch_fills_result(cid, None, e)
        return r.on_fetch_fills_result(cid, fills, None)

    # ---- idleness and shutdown ----------------------------------------------------------------

    def idle(self) -> None:
        """The executor has no work left."""
        if self._idle is not None:
            self._idle.set()

    async def until_idle(self, busy: Callable[[], bool], timeout_s: float) -> None:
        """Wait (at most `timeout_s` loop seconds) until `busy()` says no work is left."""
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(max(timeout_s, 0.0)):
                while busy():
                    self._idle = asyncio.Event()
                    try:
                        await self._idle.wait()
                    finally:
                        self._idle = None

    async def close(self) -> None:
        """Drop every venue call in flight."""
        await cancel_all(list(self._tasks))
