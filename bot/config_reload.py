"""What a reload of the config file does to the running settings (pure): which sections wait
for a restart and keep their running values, which settings change, and which live `set`
changes the file does not repeat (they end with the reload: the file is the truth again)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from bot.config import Settings
from bot.config_diff import changes, flatten

# Sections a reload cannot change while running: they keep their running values (reported).
RESTART_SECTIONS = ("bot_id", "accounts", "sim", "positions", "journal", "mqtt", "metrics", "log")


@dataclass(frozen=True, slots=True)
class Reload:
    settings: Settings  # the file's settings, restart-only sections at their running values
    needs_restart: list[str]
    changes: dict[str, dict[str, Any]]
    dropped_sets: list[dict[str, Any]]


def hedges_differ(running: Settings, new: Settings) -> bool:
    """The hedged underlyings or the lines a hedge may trade (instrument and routing
    candidates) differ: streams and books are set up for them at start, so only a restart can
    change them (their limits apply at once)."""
    return set(new.hedge) != set(running.hedge) or any(
        new.hedge[u].lines() != running.hedge[u].lines() for u in new.hedge
    )


def reload_of(running: Settings, new: Settings, live_sets: Mapping[str, Any]) -> Reload:
    """`new` (the file, validated in full) as it applies over `running`; `live_sets`: the `set`
    changes since the file was last read, by dotted path."""
    ignored = [s for s in RESTART_SECTIONS if getattr(new, s) != getattr(running, s)]
    kept = new.model_copy(update={s: getattr(running, s) for s in ignored})
    if kept.risk.halt_file != running.risk.halt_file:
        # The kill switch moves only with a restart: `hedgebot halt` must hit what is watched.
        ignored.append("risk.halt_file")
        risk_kept = kept.risk.model_copy(update={"halt_file": running.risk.halt_file})
        kept = kept.model_copy(update={"risk": risk_kept})
    file_values = flatten(kept.model_dump(mode="json"))
    dropped = [
        {"path": path, "set": value, "file": file_values.get(path)}
        for path, value in live_sets.items()
        if file_values.get(path) != value
    ]
    return Reload(kept, ignored, changes(running, kept), dropped)
