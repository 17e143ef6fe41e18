"""The executor: works one approved intent on its venue until every fill is booked.

Modes, per hedge instrument (`execution.mode`, overridden in `execution.instruments`):
- taker: one marketable limit priced from a walk of the live book. When the expected average
  price is worse than `max_slippage_bps` from mid the order is shrunk to what fits or refused
  (`on_slippage`); with no fresh book it is refused unless `allow_no_book` permits a limit
  capped at mid. Never sent blind.
- maker_first: post-only at the touch, re-priced up to `maker_reprices` times or
  `maker_timeout_s`, then the rest goes as a taker order within the slippage cap.
- twap: an order above `twap_depth_fraction` of the visible depth is sliced over
  `twap_duration_s`; before each slice the engine's gap for the underlying is read again and the
  slicing stops early once the drift is gone.

Every order, slice or re-price, has its own client id: the intent's id for a single taker order,
the intent's id plus a suffix (m1, m2, ..., t, s1, s2, ...) for the children of a maker_first or
twap intent. Each child is journaled as an intent before it is sent; a retry reuses its id.
While a parent works, its unsent rest stays in the ledger as a reservation (an order with no
request), so delta counts the whole intent in flight and the policy does not decide again on
the same drift between slices.

Money-safety rules it keeps (design.md):
- one intent, one client id; the create is never re-sent: an ambiguous create (timeout, network
  error) is resolved by looking the order up by client id;
- the order is in the ledger (and so in delta) before it is sent, and stays until settled;
- every wait is bounded: an order still open after its timeout is cancelled, and fills the
  fill stream has not delivered are fetched from the venue.
- the expected cost (fee + slippage) is checked before each send (bot/execution/pricing.py).

Why the order logic is synchronous: every step of an order (the create's answer, a lookup, a
cancel, a fills fetch, an update or fill from the streams, the end of a wait) is an event method
that advances the order's state (work.py) and returns the commands to carry out next (send, look
up, cancel, fetch fills: commands.py). Waits (timeouts, re-prices, polls, the gap between TWAP
slices) are timers on the Clock, the only way time reaches the logic. One small async driver
(driver.py) carries out the commands against the venue, bounded by `order_timeout_s`, and feeds
each answer, or the error it failed with, back as an event. On the live clock that is ordinary
asyncio; on the VirtualClock of a backtest the same code runs unchanged and exactly, with time
jumping to the next timer.

Layout, one responsibility a module, each class building on the one before:
- transitions.py: the order lifecycle (which status may follow which);
- taker.py: pricing and sizing one taker order (pure);
- commands.py: what the logic asks of a venue;
- work.py: the state of an order's and a parent's work;
- tracking.py: state, stream inputs, opening/finishing orders, events;
- stuck_handling.py: stuck-order alerts and an operator's resolution;
- endings.py: how an order's follow-up ends: done and handed on, or cut short by a surprise;
- placement.py: send once, resolve an ambiguous create, cancel on timeout, fetch missing fills;
- algorithms.py: the maker_first and twap parents and their children;
- driver.py: the asyncio shell that carries out the commands;
- facade.py: `Executor`: submit, and the lifecycle at shutdown.
"""

from bot.execution.executor.facade import Executor
from bot.execution.executor.taker import Refusal, TakerPlan, marketable_limit
from bot.execution.executor.tracking import GapFn, LineKey, OrderJournal
from bot.execution.executor.transitions import TRANSITIONS, can_transition

__all__ = [
    "TRANSITIONS",
    "Executor",
    "GapFn",
    "LineKey",
    "OrderJournal",
    "Refusal",
    "TakerPlan",
    "can_transition",
    "marketable_limit",
]
