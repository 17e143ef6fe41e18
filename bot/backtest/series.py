"""A path's time series for its picture, down-sampled to a bounded number of points so a long
path costs the same memory as a short one."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

# At most this many points per path: enough for a picture, a few tens of kB per path.
MAX_POINTS = 2_000


@dataclass(slots=True)
class Series:
    """Every `stride`-th tick of the first underlying: time (hours from the start), index,
    delta, the band's centre and edges (in the hedge's unit) and the cost so far (USD)."""

    unit: str = "coin"
    stride: int = 1
    hours: list[float] = field(default_factory=list)
    price: list[float] = field(default_factory=list)
    delta: list[float] = field(default_factory=list)
    target: list[float] = field(default_factory=list)
    lower: list[float] = field(default_factory=list)
    upper: list[float] = field(default_factory=list)
    cost_usd: list[float] = field(default_factory=list)

    @classmethod
    def for_ticks(cls, ticks: int, max_points: int = MAX_POINTS) -> Series:
        return cls(stride=max(1, math.ceil(ticks / max_points)))

    def wants(self, tick: int) -> bool:
        return tick % self.stride == 0

    def wanted(self, first: int, last: int) -> range:
        """The ticks from `first` to `last` (both included) that `wants`."""
        return range(-(-first // self.stride) * self.stride, last + 1, self.stride)

    def add(
        self,
        hours: float,
        price: float,
        delta: float,
        target: float,
        lower: float,
        upper: float,
        cost_usd: float,
    ) -> None:
        self.hours.append(hours)
        self.price.append(price)
        self.delta.append(delta)
        self.target.append(target)
        self.lower.append(target - lower)
        self.upper.append(target + upper)
        self.cost_usd.append(cost_usd)

    def __len__(self) -> int:
        return len(self.hours)
