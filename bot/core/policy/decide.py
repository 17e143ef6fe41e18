"""One decision rule for every trigger policy: is the drift worth a trade, and to where?

Pure. The policy says which band applies now (base.Band); the gates and the trade rule here are
common to all policies:
- halted: no trade, the halt reason is the decision's reason;
- an order in flight on the underlying: no trade (README, money-safety rule 4: a trigger
  never fires twice for one drift);
- a band the policy could not compute (non-finite, empty): no trade;
- force (an operator's hedge-now): trade any non-zero gap to the centre, band or not;
- outside the band: trade `hedge_ratio` of the way to the centre or to the nearest band edge;
- modifiers (base.Modifiers), with what they remember (base.Memory) passed in and returned:
  outside the band, wait for a minimum price move since the last trade (`min_move`), then for
  the drift to stay outside `debounce_ms`; inside the band but beyond its inner part, trade to
  the centre once `time_fallback_ms` passed since the last trade.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field, replace

from bot.core.book import Exposure
from bot.core.market import UnderlyingMarket
from bot.core.policy.base import Band, Memory, Modifiers, TriggerPolicy, Unit, policy_vol

NO_MODIFIERS = Modifiers()


@dataclass(frozen=True, slots=True)
class HedgeDecision:
    underlying: str
    ts_ms: int
    trade: bool
    # inside_band | outside_band | order_in_flight | hedge_now | bad_band: ... | halt reason |
    # debounce | min_move | time_fallback
    reason: str
    policy: str  # the policy's name (config `kind`)
    bounds: Band  # the band the policy used for this decision
    delta: float  # in bounds.unit
    gap_coin: float  # coin delta to add (buy > 0); 0 when not trading
    price: float
    vol: float = float("nan")  # the volatility the policy used (base.policy_vol), a fraction
    memory: Memory = field(default_factory=Memory)  # the modifiers' memory after this decision

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
            "vol": self.vol if math.isfinite(self.vol) else None,  # None: no vol known yet
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
    modifiers: Modifiers = NO_MODIFIERS,
    memory: Memory | None = None,
) -> HedgeDecision:
    """The decision for one underlying now. `hedge_ratio` in (0, 1] is the share of the way to
    the goal a trade covers (config hedge.<U>.hedge_ratio). `memory`: the previous decision's
    (None: the first decision, which starts the time fallback's clock)."""
    if not 0 < hedge_ratio <= 1:
        raise ValueError(f"hedge_ratio must be in (0, 1], got {hedge_ratio}")
    band = policy.band_for(exp, market, now_ms)
    delta = exp.delta_in(band.unit)
    vol = policy_vol(exp, market)
    mem = memory if memory is not None else Memory(last_trade_ms=now_ms)

    def result(
        trade: bool, reason: str, gap_unit: float = 0.0, after: Memory | None = None
    ) -> HedgeDecision:
        gap_coin = gap_unit if band.unit == "coin" else gap_unit / exp.price
        if trade:
            after = Memory(last_trade_ms=now_ms, last_trade_price=exp.price)
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
            vol=vol,
            memory=after if after is not None else mem,
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
        return _inside(band, drift, now_ms, modifiers, mem, hedge_ratio, result)
    wait = _outside_wait(exp.price, now_ms, modifiers, mem)
    if wait is not None:
        return result(False, wait[0], after=wait[1])
    return result(True, "outside_band", (band.goal(delta) - delta) * hedge_ratio)


def _outside_wait(
    price: float, now_ms: int, m: Modifiers, mem: Memory
) -> tuple[str, Memory] | None:
    """Outside the band, why not to trade yet (the price has not moved `min_move` since the
    last trade, or the drift has not stayed outside `debounce_ms`) and the memory that keeps
    since when it is outside; None: trade now."""
    since = mem.outside_since_ms if mem.outside_since_ms is not None else now_ms
    waiting = replace(mem, outside_since_ms=since)
    last = mem.last_trade_price
    if m.min_move is not None and last is not None and abs(price / last - 1) < m.min_move:
        return "min_move", waiting
    if m.debounce_ms is not None and now_ms - since < m.debounce_ms:
        return "debounce", waiting
    return None


def _inside(
    band: Band,
    drift: float,
    now_ms: int,
    m: Modifiers,
    mem: Memory,
    hedge_ratio: float,
    result: Callable[..., HedgeDecision],
) -> HedgeDecision:
    """Inside the band: no trade, unless the time fallback is due and the drift is beyond the
    inner band (`inner` x the band's side on that side of the centre)."""
    mem = replace(mem, outside_since_ms=None)
    if m.time_fallback_ms is not None and mem.last_trade_ms is not None:
        side = band.upper if drift > 0 else band.lower
        due = now_ms - mem.last_trade_ms >= m.time_fallback_ms
        if due and abs(drift) > m.inner * side:
            return result(True, "time_fallback", -drift * hedge_ratio)
    return result(False, "inside_band", after=mem)
