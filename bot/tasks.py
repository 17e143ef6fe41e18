"""Task helpers for the shell."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable
from typing import Any


async def cancel_all(tasks: Iterable[asyncio.Future[Any]], grace_s: float = 1.0) -> None:
    """Cancel tasks and wait until every one has ended. On Python 3.11 `asyncio.wait_for` can
    swallow a cancellation that races with its inner task finishing, so one cancel() is not
    enough for a loop built on it: cancel again until each task is done."""
    pending = {t for t in tasks if not t.done()}
    while pending:
        for t in pending:
            t.cancel()
        _, pending = await asyncio.wait(pending, timeout=grace_s)
