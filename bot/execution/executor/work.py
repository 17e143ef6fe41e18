"""The state of the work on one order and on one parent algorithm, advanced by the executor's
event methods (placement.py, algorithms.py) and never by awaiting."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from bot.clock import Timer
from bot.core.orders import OrderIntent
from bot.execution.ledger import TrackedOrder


class Phase(enum.Enum):
    """Where an order's follow-up stands: an answer awaited (a command is out) or a wait."""

    CREATE = "create"  # the create is out
    LOOKUP = "lookup"  # ambiguous create: a lookup by client id is out
    LOOKUP_WAIT = "lookup_wait"  # ... waiting for news (status not SENT) before the next one
    WORKING = "working"  # waiting for a final state until the order's wait ends
    CANCEL = "cancel"  # the wait ended: the cancel is out
    REFRESH = "refresh"  # cancelled but not final: reading its state
    FINAL_WAIT = "final_wait"  # still not final: waiting (bounded) for it
    STUCK_WAIT = "stuck_wait"  # stuck: waiting with backoff, alerting
    STUCK_REFRESH = "stuck_refresh"  # stuck: reading its state again
    STUCK_CANCEL = "stuck_cancel"  # stuck: cancelling again
    BOOKING = "booking"  # final: waiting for the stream's fills
    FETCH = "fetch"  # fetching the fills the stream did not deliver


WAITS = frozenset(
    {Phase.LOOKUP_WAIT, Phase.WORKING, Phase.FINAL_WAIT, Phase.STUCK_WAIT, Phase.BOOKING}
)


@dataclass(slots=True)
class OrderWork:
    """One order followed until it is settled. `announce`: report order.done at the end (not
    for an order adopted after a restart); `parent`: the parent algorithm it is a child of."""

    order: TrackedOrder
    wait_s: float  # how long it may work before it is cancelled
    report_outcome: bool  # tell the circuit breaker whether the venue accepted it
    announce: bool = True
    parent: str | None = None
    phase: Phase = Phase.CREATE
    delay_s: float = 0.2  # the next poll's backoff (lookups, stuck orders)
    lookups_until_ms: int = 0  # failing lookups past this make the order stuck
    told_pending: bool = False  # order.not_found_yet reported
    until_ms: int = 0  # the end of the current wait
    timer: Timer | None = None  # the current wait's end
    wake: Timer | None = None  # a change of the order to look at


@dataclass(slots=True)
class ParentWork:
    """A maker_first or twap parent: the intent as submitted (the reservation's amount shrinks
    as it works), its progress and the child it waits for."""

    parent: TrackedOrder
    mode: str
    intent: OrderIntent
    slices: int = 0
    filled: float = 0.0
    reason: str = "done"
    step: int = 1  # maker: the re-price number; twap: the slice number
    deadline_ms: int = 0  # maker: when posting at the touch ends
    rest: float = 0.0  # maker: the amount the current post was sent for
    fallback: bool = False  # maker: the current child is the taker fallback
    per: float = 0.0  # twap: a slice's amount
    interval_s: float = 0.0  # twap: the gap between slices
    timer: Timer | None = None  # the start, or the gap before the next twap slice
