"""The one place that reads or waits on time. Everything else asks a Clock.

A Clock is the event loop's time, in epoch milliseconds: `now_ms`, timers (`call_at`,
`call_later`), `sleep`, and `wait_for` (an await bounded in clock seconds).

- `LiveClock`: the wall clock; with `speed` > 1 a simulated-only run goes faster than real
  time (paper demos, drills).
- `VirtualClock` on a `VirtualLoop`: nothing waits. When every task is blocked, the loop jumps
  its time to the next timer, so a backtest runs as fast as the CPU allows with the very same
  engine, executor and simulated exchange code as live (`run_virtual`).

Wall time (`wall_ms`) is for what expires in the real world whatever the engine's clock says:
external positions sent by other systems, MQTT command freshness, file-write throttles.
"""

from __future__ import annotations

import asyncio
import heapq
import math
import time
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Protocol, TypeVar

from bot.interrupts import CtrlC

T = TypeVar("T")


class Timer(Protocol):
    def cancel(self) -> None: ...


class Clock(Protocol):
    def now_ms(self) -> int: ...

    def call_at(self, at_ms: int, fn: Callable[[], None]) -> Timer:
        """Run `fn` once the clock reaches `at_ms` (at once if it has)."""
        ...

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer: ...

    async def sleep(self, seconds: float) -> None:
        """Sleep `seconds` of this clock's time."""
        ...

    async def wait_for(self, aw: Awaitable[T], seconds: float) -> T:
        """`aw`, or TimeoutError after `seconds` of this clock's time."""
        ...

    def to_real(self, seconds: float) -> float:
        """Loop seconds that `seconds` of this clock's time take."""
        ...


def wall_ms() -> int:
    """Real wall time: for what expires in the outside world, never for trading decisions."""
    return time.time_ns() // 1_000_000


def monotonic_s() -> float:
    """Real monotonic seconds: for throttling I/O (file saves, log lines), never for trading."""
    return time.monotonic()


async def real_sleep(seconds: float) -> None:
    """A real-time pause at the network edge (reconnect backoff to a broker or an exchange)."""
    await asyncio.sleep(max(seconds, 0.0))


class _Clock:
    """What every clock shares: timers, sleeps and bounded awaits in clock seconds, carried
    out by the running loop at `speed` clock seconds per loop second."""

    speed = 1.0

    def now_ms(self) -> int:
        raise NotImplementedError

    def call_at(self, at_ms: int, fn: Callable[[], None]) -> Timer:
        return self.call_later((at_ms - self.now_ms()) / 1000.0, fn)

    def call_later(self, seconds: float, fn: Callable[[], None]) -> Timer:
        self.now_ms()  # a clock that counts from its first use starts here at the latest
        return asyncio.get_running_loop().call_later(self.to_real(seconds), fn)

    async def sleep(self, seconds: float) -> None:
        self.now_ms()
        await asyncio.sleep(self.to_real(seconds))

    async def wait_for(self, aw: Awaitable[T], seconds: float) -> T:
        self.now_ms()
        return await asyncio.wait_for(aw, self.to_real(seconds))

    def to_real(self, seconds: float) -> float:
        return max(seconds, 0.0) / self.speed


class LiveClock(_Clock):
    """Wall time (speed 1), or a simulated-only run going `speed` times faster than real time
    from `start_ms` (a persisted simulated exchange resumes at its own saved time)."""

    def __init__(self, speed: float = 1.0, start_ms: int | None = None) -> None:
        if not speed > 0:
            raise ValueError("speed must be > 0")
        self.speed = speed
        self._start_ms = start_ms if start_ms is not None else wall_ms()
        self._m0 = time.monotonic()

    def now_ms(self) -> int:
        return self._start_ms + int((time.monotonic() - self._m0) * self.speed * 1000.0)


class VirtualLoop(asyncio.SelectorEventLoop):
    """An event loop whose time only moves when every task waits: it then jumps to the next
    timer instead of sleeping. It must do no real I/O (sockets would never be waited for)."""

    def __init__(self) -> None:
        super().__init__()
        self._virtual_s = 0.0

    def time(self) -> float:
        return self._virtual_s

    def _run_once(self) -> None:
        # Private, stable since 3.4: _ready holds callbacks to run now, _scheduled the timers.
        ready: Any = self.__dict__["_ready"]
        scheduled: Any = self.__dict__["_scheduled"]
        if not ready:
            self._drop_cancelled_head(scheduled)
            if scheduled and scheduled[0]._when > self._virtual_s:
                self._virtual_s = scheduled[0]._when
        super()._run_once()  # type: ignore[misc]

    def _drop_cancelled_head(self, scheduled: Any) -> None:
        # As the base loop does before it waits: a cancelled timer left at the head would set
        # the jump, and the base loop, having dropped it, would wait in real time for the next.
        while scheduled and scheduled[0]._cancelled:
            self.__dict__["_timer_cancelled_count"] -= 1
            heapq.heappop(scheduled)._scheduled = False

    def is_idle_until(self, when_s: float) -> bool:
        """True when nothing is ready and no timer falls before `when_s`."""
        ready: Any = self.__dict__["_ready"]
        scheduled: Any = self.__dict__["_scheduled"]
        if ready:
            return False
        self._drop_cancelled_head(scheduled)
        return not scheduled or scheduled[0]._when > when_s

    def quiet_until(self, ignore: object = None) -> float:
        """Loop time of the first live timer other than `ignore` (inf with none; -inf when a
        callback is ready): a backtest may step its market without the loop until then."""
        ready: Any = self.__dict__["_ready"]
        scheduled: Any = self.__dict__["_scheduled"]
        if ready:
            return -math.inf
        live = (h._when for h in scheduled if not h._cancelled and h is not ignore)
        return min(live, default=math.inf)

    def jump(self, when_s: float) -> None:
        """Move time forward with no timer due before it (see is_idle_until)."""
        self._virtual_s = max(self._virtual_s, when_s)


class VirtualClock(_Clock):
    """The time of a VirtualLoop as epoch ms from `start_ms`: it never waits (run_virtual)."""

    def __init__(self, start_ms: int) -> None:
        self._start_ms = start_ms
        self._loop: VirtualLoop | None = None
        self._t0 = 0.0

    def _bound(self) -> VirtualLoop:
        if self._loop is None:
            loop = asyncio.get_running_loop()
            assert isinstance(loop, VirtualLoop), "a VirtualClock runs on a VirtualLoop"
            self._loop, self._t0 = loop, loop.time()
        return self._loop

    def now_ms(self) -> int:
        return self.ms_of(self._bound().time())

    @property
    def loop(self) -> VirtualLoop:
        return self._bound()

    def loop_now(self) -> float:
        """The loop time now (virtual seconds; see when_of)."""
        return self._bound().time()

    def when_of(self, at_ms: int) -> float:
        """The loop time of clock ms `at_ms`."""
        return self._t0 + (at_ms - self._start_ms) / 1000.0

    def ms_of(self, when_s: float) -> int:
        """The clock ms the loop shows at loop time `when_s` (as now_ms would)."""
        return self._start_ms + round((when_s - self._t0) * 1000.0)

    async def advance_to(self, at_ms: int) -> None:
        """Let everything due up to `at_ms` run, then stand at `at_ms`. Cheap when idle: a tick
        with nothing in flight costs no loop iteration."""
        loop = self._bound()
        when = self.when_of(at_ms)
        if loop.is_idle_until(when):
            loop.jump(when)
            return
        await asyncio.sleep(when - loop.time())


def run_virtual(main: Callable[[], Coroutine[Any, Any, T]]) -> T:
    """Run `main()` to completion on a fresh VirtualLoop, as asyncio.run does on its loop:
    Ctrl-C cancels `main` (then raises KeyboardInterrupt, even if `main` swallowed the cancel)
    instead of raising inside whichever task runs, and tasks still pending at the end are
    cancelled and awaited, so asyncio never prints a task destroyed pending or an exception
    never retrieved."""
    loop = VirtualLoop()
    task = loop.create_task(main())

    def cancel_main() -> None:
        if task.done():
            raise KeyboardInterrupt
        task.cancel()
        loop.call_soon_threadsafe(lambda: None)  # wakes the loop if it waits

    try:
        with CtrlC(cancel_main) as ctrl_c:
            try:
                result = loop.run_until_complete(task)
            except asyncio.CancelledError:
                if ctrl_c.pressed:
                    raise KeyboardInterrupt from None
                raise
            ctrl_c.check()  # `main` swallowed the cancel (a cleanup awaiting a cancelled task)
            return result
    finally:
        try:
            pending = asyncio.all_tasks(loop)
            for t in pending:
                t.cancel()
            if pending:
                loop.run_until_complete(asyncio.gather(*pending, return_exceptions=True))
            loop.run_until_complete(loop.shutdown_asyncgens())
        finally:
            loop.close()
