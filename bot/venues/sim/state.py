"""Saving the simulated exchange: one JSON file, replaced atomically.

`os.replace` of a fully written temporary file means a reader (a restart after SIGKILL) sees the
old state or the new one, never half of one. No fsync: a killed process loses nothing the kernel
already holds; only a power cut could, and a paper exchange can live with that.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    os.replace(tmp, path)


def read(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        return None
    return data


def saved_clock_ms(path: Path) -> int | None:
    """Simulated time at the last save, so a restarted daemon can start its clock there."""
    data = read(path)
    return None if data is None else int(data["clock_ms"])
