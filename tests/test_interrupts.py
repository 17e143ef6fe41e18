"""A Ctrl-C that Python swallows (it prints "Exception ignored" when the KeyboardInterrupt lands
in a callback, such as logging's at-fork handler while a process pool forks) is raised again at
the next check, so a sweep or a backtest never runs on to its end after one."""

from __future__ import annotations

import contextlib
import os
import signal

import pytest

from bot.interrupts import CtrlC


def test_a_swallowed_press_is_raised_at_the_next_check() -> None:
    with CtrlC() as ctrl_c:
        ctrl_c.check()  # nothing pressed yet
        with contextlib.suppress(KeyboardInterrupt):  # what an at-fork callback does with it
            os.kill(os.getpid(), signal.SIGINT)  # handled at once, in this thread
        with pytest.raises(KeyboardInterrupt):
            ctrl_c.check()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_another_handler_is_left_alone() -> None:
    def mine(signum: int, frame: object) -> None: ...

    old = signal.signal(signal.SIGINT, mine)
    try:
        with CtrlC() as ctrl_c:
            assert signal.getsignal(signal.SIGINT) is mine
            ctrl_c.check()
        assert signal.getsignal(signal.SIGINT) is mine
    finally:
        signal.signal(signal.SIGINT, old)


def test_a_first_press_can_do_something_else_a_second_raises() -> None:
    """run_virtual's use: the first press cancels its main task, the second is a plain Ctrl-C."""
    seen: list[str] = []
    with CtrlC(lambda: seen.append("cancel")) as ctrl_c:
        os.kill(os.getpid(), signal.SIGINT)
        assert seen == ["cancel"] and ctrl_c.pressed
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
        assert seen == ["cancel"] and ctrl_c.presses == 2
