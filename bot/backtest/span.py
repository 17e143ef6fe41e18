"""Where a backtest's fast-forward span stands (bot/backtest/fastforward.py): the quiet ticks
it has stepped, each hedged underlying's corridor, and the loop, risk view and prices after the
last of them."""

from __future__ import annotations

from dataclasses import dataclass

from bot.hedger.riskview import IdleBasis


@dataclass(slots=True)
class Span:
    """The quiet ticks after `t0`, every `tick_ms`: each underlying's index at each of them
    (`first`: at t0)."""

    t0: int
    tick_ms: int
    first: dict[str, float]
    index: dict[str, list[float]]
    n: int = 0
    committed: int = 0  # ticks the venues stand at
    fed: int = 0  # ticks whose index reached the hedger (realized vol, the view's market)

    @property
    def end(self) -> int:
        return self.t0 + self.n * self.tick_ms

    def times(self, start: int, stop: int) -> list[int]:
        """The times of ticks start..stop-1 (0: the first after t0)."""
        return [self.t0 + (i + 1) * self.tick_ms for i in range(start, stop)]


@dataclass(frozen=True, slots=True)
class Ref:
    """A hedged underlying's corridor: the venue and model slot of its index, its bounds."""

    u: str
    venue: str
    slot: int
    lo: float
    hi: float


@dataclass(slots=True)
class At:
    """Where a span stands: the last quiet tick, the loop's time after it, the risk view's
    next run and what decides whether it is idle, the first other timer (loop time), the
    index and every venue's prices."""

    t: int
    now_s: float
    rv_when: float
    basis: IdleBasis | None
    others: float
    prev: dict[str, float]
    prices: dict[str, list[float]]
