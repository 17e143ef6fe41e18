"""Ctrl-C that is never lost. Python raises KeyboardInterrupt wherever the main thread is, and
where that is a callback it cannot propagate from (logging's at-fork handler while a process
pool forks a worker) it prints "Exception ignored" and carries on: the run would go to its end.
`CtrlC` remembers the press, and `check()` raises it again at the next safe point."""

from __future__ import annotations

import signal
import threading
from types import FrameType
from typing import Any


class CtrlC:
    def __init__(self) -> None:
        self.pressed = False
        self._old: Any = None

    def __enter__(self) -> CtrlC:
        if (
            threading.current_thread() is threading.main_thread()
            and signal.getsignal(signal.SIGINT) is signal.default_int_handler
        ):
            self._old = signal.signal(signal.SIGINT, self._on)
        return self

    def _on(self, signum: int, frame: FrameType | None) -> None:
        self.pressed = True
        raise KeyboardInterrupt

    def check(self) -> None:
        if self.pressed:
            raise KeyboardInterrupt

    def __exit__(self, *exc: object) -> None:
        if self._old is not None:
            signal.signal(signal.SIGINT, self._old)
            self._old = None
