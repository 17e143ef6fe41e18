"""Clocks: timers, sleeps and bounded waits on the virtual clock happen at exact clock times,
instantly; the live clock maps loop time onto epoch ms at its speed."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.clock import LiveClock, VirtualClock, run_virtual

T0 = 1_767_225_600_000


def test_virtual_timers_fire_in_order_at_their_times_without_waiting() -> None:
    fired: list[tuple[str, int]] = []

    async def main() -> int:
        clock = VirtualClock(T0)
        clock.call_at(T0 + 5_000, lambda: fired.append(("b", clock.now_ms())))
        clock.call_later(1.0, lambda: fired.append(("a", clock.now_ms())))
        clock.call_at(T0 + 3_600_000, lambda: fired.append(("c", clock.now_ms())))
        await clock.sleep(7_200)
        return clock.now_ms()

    started = time.perf_counter()
    end = run_virtual(main)
    assert time.perf_counter() - started < 1.0  # two simulated hours, no real waiting
    assert fired == [("a", T0 + 1_000), ("b", T0 + 5_000), ("c", T0 + 3_600_000)]
    assert end == T0 + 7_200_000


def test_virtual_wait_for_times_out_at_the_clock_bound() -> None:
    async def main() -> tuple[int, int]:
        clock = VirtualClock(T0)
        with pytest.raises(TimeoutError):
            await clock.wait_for(asyncio.sleep(60), 5.0)
        at_timeout = clock.now_ms()
        assert await clock.wait_for(asyncio.sleep(1, result=7), 5.0) == 7
        return at_timeout, clock.now_ms()

    assert run_virtual(main) == (T0 + 5_000, T0 + 6_000)


def test_advance_to_runs_due_work_first_and_is_free_when_idle() -> None:
    async def main() -> list[int]:
        clock = VirtualClock(T0)
        seen: list[int] = []

        async def worker() -> None:
            await clock.sleep(30)
            seen.append(clock.now_ms())

        task = asyncio.ensure_future(worker())
        await clock.advance_to(T0 + 60_000)  # the worker's wake-up at +30 s runs on the way
        seen.append(clock.now_ms())
        await task
        for i in range(1, 10_001):  # idle: no timer, no task, only time moves
            await clock.advance_to(T0 + 60_000 + i * 60_000)
        seen.append(clock.now_ms())
        return seen

    assert run_virtual(main) == [T0 + 30_000, T0 + 60_000, T0 + 60_000 + 10_000 * 60_000]


def test_live_clock_runs_at_its_speed_from_its_start() -> None:
    async def main() -> tuple[int, int, list[int]]:
        clock = LiveClock(speed=100.0, start_ms=T0)
        hits: list[int] = []
        clock.call_later(2.0, lambda: hits.append(clock.now_ms()))  # 20 ms of real time
        await clock.sleep(5.0)
        return clock.now_ms(), int(clock.to_real(5.0) * 1000), hits

    now, real_ms, hits = asyncio.run(main())
    assert T0 + 5_000 <= now < T0 + 60_000
    assert real_ms == 50
    assert len(hits) == 1 and T0 + 2_000 <= hits[0] < T0 + 60_000


def test_a_virtual_clock_refuses_a_real_loop() -> None:
    async def main() -> None:
        VirtualClock(T0).now_ms()

    with pytest.raises(AssertionError, match="VirtualLoop"):
        asyncio.run(main())
