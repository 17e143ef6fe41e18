"""Hot reload: the config file is watched, and a change reloads it (as SIGHUP or MQTT `reload`
do). A bad file keeps the running config; the reload says why (bot/operator.py)."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import structlog
import watchfiles

log = structlog.get_logger("hedgebot.config_watch")

# Editors write a file in several steps (truncate, write, rename): changes within this many
# milliseconds are read once.
DEBOUNCE_MS = 300


async def watch_config(path: Path, reload: Callable[[], object]) -> None:
    """Call `reload` whenever `path` changes on disk; runs until cancelled. The folder is
    watched, not the file, so an editor's write-then-rename is seen too."""
    target = _absolute(path)
    log.info("config.watching", path=target)
    folder = os.path.dirname(target)
    async for batch in watchfiles.awatch(folder, debounce=DEBOUNCE_MS, recursive=False):
        if not any(_absolute(changed) == target for _, changed in batch):
            continue
        log.info("config.file_changed", path=target)
        try:
            reload()
        except Exception as e:  # the reload reported it (alert event); the daemon goes on
            log.warning("config.reload_failed", error=str(e))


def _absolute(path: str | Path) -> str:
    return os.path.abspath(path)  # string work only: the file need not exist
