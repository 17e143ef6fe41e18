"""One decision rule for every trigger policy: is the drift worth a trade, and to where?

Pure. The policy says which band applies now (base.Band); the gates and the trade rule here are
common to all policies:
- halted: no trade, the halt reason is the decision's reason;
- an order in flight on the underlying: no trade (README, money-safety rule 4: a trigger
  never fires twice for one drift);
- a band the policy could not compute (non-finite, empty): no trade;
- force (an operator's hedge-now): trade any non-zero gap to the centre, band or not;
- outside the band: trade `hedge_ratio` of the way to the centre or to the nearest band edge.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.book import Exposure
from bot.core.market import UnderlyingMarket
from bot.core.policy.base import Band, TriggerPolicy, Unit


@dataclass(frozen=True, slots=True)
class HedgeDecision:
    underlying: str
    ts_ms: int
    trade: bool
    reason: str  # inside_band | outside_band | order_in_flight | hedge_now | bad_band: ... | halt
    policy: str  # the policy's name (config `kind`)
    bounds: Band  # the band the policy used for this decision
    delta: float  # in bounds.unit
    gap_coin: float  # coin delta to add (buy > 0); 0 when not trading
    price: float

    @property
    def unit(self) -> Unit:
        return self.bounds.unit

    @property
    def target(self) -> float:
        """The band's centre (target + bias, or wherever the policy put it), in `unit`."""
        return self.bounds.center

    @property
    def band(self) -> float:
        """Half-width in `unit`; for an asymmetric band the wider side (see band_lower/upper)."""
        return self.bounds.half_width

    @property
    def band_lower(self) -> float:
        return self.bounds.lower

    @property
    def band_upper(self) -> float:
        return self.bounds.upper

    def as_dict(self) -> dict[str, object]:
        return {
            "underlying": self.underlying,
            "trade": self.trade,
            "reason": self.reason,
            "policy": self.policy,
            "delta": self.delta,
            **self.bounds.as_dict(),
            "gap_coin": self.gap_coin,
            "price": self.price,
        }


def decide(
    policy: TriggerPolicy,
    exp: Exposure,
    market: UnderlyingMarket,
    now_ms: int,
    *,
    order_in_flight: bool,
    halted_reason: str | None = None,
    force: bool = False,
    hedge_ratio: float = 1.0,
) -> HedgeDecision:
    """The decision for one underlying now. `hedge_ratio` in (0, 1] is the share of the way to
    the goal a trade covers (config hedge.<U>.hedge_ratio)."""
    if not 0 < hedge_ratio <= 1:
        raise ValueError(f"hedge_ratio must be in (0, 1], got {hedge_ratio}")
    band = policy.band_for(exp, market, now_ms)
    delta = exp.delta_in(band.unit)

    def result(trade: bool, reason: str, gap_unit: float = 0.0) -> HedgeDecision:
        gap_coin = gap_unit if band.unit == "coin" else gap_unit / exp.price
        return HedgeDecision(
            underlying=exp.underlying,
            ts_ms=exp.ts_ms,
            trade=trade,
            reason=reason,
            policy=policy.name,
            bounds=band,
            delta=delta,
            gap_coin=gap_coin,
            price=exp.price,
        )

    if halted_reason is not None:
        return result(False, halted_reason)
    if order_in_flight:
        return result(False, "order_in_flight")
    problem = band.problem()
    if problem is not None:
        return result(False, f"bad_band: {problem}")
    drift = delta - band.center
    if force:
        return result(drift != 0.0, "hedge_now", -drift)
    if band.contains(delta):
        return result(False, "inside_band")
    return result(True, "outside_band", (band.goal(delta) - delta) * hedge_ratio)
