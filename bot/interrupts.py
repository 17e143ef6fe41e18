"""Ctrl-C that is never lost. Python raises KeyboardInterrupt wherever the main thread is, and
where that is a callback it cannot propagate from (logging's at-fork handler while a process
pool forks a worker) it prints "Exception ignored" and carries on: the run would go to its end.
`CtrlC` remembers the press, and `check()` raises it again at the next safe point. Only the
main thread's default handler is replaced (a handler someone else installed is left alone)."""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any


class CtrlC:
    def __init__(self, on_press: Callable[[], None] | None = None) -> None:
        """`on_press`: what a first press does instead of raising KeyboardInterrupt at once
        (run_virtual cancels its main task); a second press raises."""
        self.presses = 0
        self._on_press = on_press
        self._old: Any = None

    @property
    def pressed(self) -> bool:
        return self.presses > 0

    def __enter__(self) -> CtrlC:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._old = signal.signal(signal.SIGINT, self._on)
        return self

    def _on(self, signum: int, frame: FrameType | None) -> None:
        self.presses += 1
        if self._on_press is None or self.presses > 1:
            raise KeyboardInterrupt
        self._on_press()

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None
