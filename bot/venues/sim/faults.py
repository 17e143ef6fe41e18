"""One-off faults a test or a drill arms on the simulated venue; each fires once."""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from bot.venues.base import VenueError


class CreateFault(StrEnum):
    REJECT = "reject"  # the venue says no
    LOST_RESPONSE = "lost_response"  # placed, but the answer never arrives: VenueAmbiguous
    LOST_REQUEST = "lost_request"  # never arrives: VenueAmbiguous, and the venue never saw it


@dataclass(slots=True)
class Faults:
    creates: deque[tuple[CreateFault, str]] = field(default_factory=deque)
    calls: dict[str, deque[VenueError]] = field(default_factory=dict)
    paused: set[str] = field(default_factory=set)
    dropped: set[str] = field(default_factory=set)
    # fetch_order answers "never seen" for an order until this long (clock ms) after its
    # create reached the venue: real venues take time to show new orders to lookups.
    hide_new_ms: int = 0
    created_ms: dict[str, int] = field(default_factory=dict)  # while hide_new_ms is set
    # Client ids every call about which (lookup, cancel, fills) fails: a venue that never
    # answers for one order. The next create arms it (unreachable_next).
    unreachable: set[str] = field(default_factory=set)
    unreachable_next: int = 0

    def next_create(self) -> tuple[CreateFault, str] | None:
        return self.creates.popleft() if self.creates else None

    def next_call_error(self, method: str) -> VenueError | None:
        queue = self.calls.get(method)
        return queue.popleft() if queue else None
