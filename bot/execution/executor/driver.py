"""The executor's asyncio shell: carries out the commands the synchronous order logic returns
(placement.py, algorithms.py) against the venues, each call bounded by `order_timeout_s` on the
Clock, and feeds every answer (or the error it failed with) back as an event, whose commands it
carries out in turn. It also waits, bounded, for the executor to have no work left."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol

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
        call, answer = self._route(command)
        cid = command.client_id
        # Any error is an answer: the logic tells venue errors from surprises.
        try:
            result = await self.clock.wait_for(call(), self.timeout_s())
        except Exception as e:
            return answer(cid, None, e)
        return answer(cid, result, None)

    def _route(
        self, command: Command
    ) -> tuple[Callable[[], Awaitable[Any]], Callable[[str, Any, Exception | None], list[Command]]]:
        """The venue call that carries out `command`, and the event its answer goes to."""
        venue, r = self.venues[command.account], self.reactor
        if isinstance(command, Send):
            return lambda: venue.create_order(command.request), r.on_create_result
        if isinstance(command, LookUp):
            return lambda: venue.fetch_order(command.client_id, command.symbol), r.on_lookup_result
        if isinstance(command, Cancel):
            return lambda: venue.cancel_order(command.client_id, command.symbol), r.on_cancel_result
        assert isinstance(command, FetchFills)
        return (
            lambda: venue.fetch_fills(command.client_id, command.symbol),
            r.on_fetch_fills_result,
        )

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
