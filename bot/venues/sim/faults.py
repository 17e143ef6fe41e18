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

    def next_create(self) -> tuple[CreateFault, str] | None:
        return self.creates.popleft() if self.creates else None

    def next_call_error(self, method: str) -> VenueError | None:
        queue = self.calls.get(method)
        return queue.popleft() if queue else None
