"""Trigger policy: is the drift from target worth a trade, and to where?

Pure. A band of half-width `band` around `target + bias` (in coin or USD). Outside the band the
policy trades `hedge_ratio` of the way back, either to the target or to the nearest band edge.
No new trigger while a hedge order on that underlying is in flight (invariant 4 in design.md).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bot.core.book import Exposure

Unit = Literal["coin", "usd"]


@dataclass(frozen=True, slots=True)
class BandPolicy:
    band: float
    unit: Unit = "coin"
    target: float = 0.0
    bias: float = 0.0
    hedge_ratio: float = 1.0
    to: Literal["target", "edge"] = "target"

    def __post_init__(self) -> None:
        if not self.band > 0:
            raise ValueError("band must be > 0")
        if not 0 < self.hedge_ratio <= 1:
            raise ValueError("hedge_ratio must be in (0, 1]")


@dataclass(frozen=True, slots=True)
class HedgeDecision:
    underlying: str
    ts_ms: int
    trade: bool
    reason: str  # inside_band | order_in_flight | halted | outside_band
    unit: Unit
    delta: float  # in unit
    target: float  # effective target (target + bias), in unit
    band: float  # in unit
    gap_coin: float  # coin delta to add (buy > 0); 0 when not trading
    price: float

    def as_dict(self) -> dict[str, object]:
        return {
            "underlying": self.underlying,
            "trade": self.trade,
            "reason": self.reason,
            "unit": self.unit,
            "delta": self.delta,
            "target": self.target,
            "band": self.band,
            "gap_coin": self.gap_coin,
            "price": self.price,
        }


def decide(
    policy: BandPolicy,
    exp: Exposure,
    *,
    order_in_flight: bool,
    halted_reason: str | None = None,
    force: bool = False,
) -> HedgeDecision:
    """`force` (an operator's hedge-now) trades any non-zero gap to the target, band or not."""
    delta = exp.delta_in(policy.unit)
    target = policy.target + policy.bias

    def result(trade: bool, reason: str, gap_unit: float = 0.0) -> HedgeDecision:
        gap_coin = gap_unit if policy.unit == "coin" else gap_unit / exp.price
        return HedgeDecision(
            underlying=exp.underlying,
            ts_ms=exp.ts_ms,
            trade=trade,
            reason=reason,
            unit=policy.unit,
            delta=delta,
            target=target,
            band=policy.band,
            gap_coin=gap_coin,
            price=exp.price,
        )

    if halted_reason is not None:
        return result(False, halted_reason)
    if order_in_flight:
        return result(False, "order_in_flight")
    drift = delta - target
    if force:
        return result(drift != 0.0, "hedge_now", -drift)
    if abs(drift) <= policy.band:
        return result(False, "inside_band")
    goal = target if policy.to == "target" else target + math.copysign(policy.band, drift)
    return result(True, "outside_band", (goal - delta) * policy.hedge_ratio)
