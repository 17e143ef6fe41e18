"""Planner: turns a decision's coin gap into an order intent on the hedge instrument. Pure."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.instruments import Instrument, Kind
from bot.core.orders import OrderIntent, Side
from bot.core.policy import HedgeDecision


@dataclass(frozen=True, slots=True)
class Plan:
    intent: OrderIntent | None
    reason: str  # planned | below_min_amount | below_min_cost | below_lot | no_trade
    contracts: float  # unrounded contracts the gap asks for (signed)


def contracts_for(gap_coin: float, hedge: Instrument, price: float) -> float:
    """Signed contracts of a delta-one instrument that carry `gap_coin` of coin delta."""
    if hedge.kind is Kind.OPTION:
        raise ValueError("options are not hedge instruments")
    return gap_coin / hedge.coin_delta_per_contract(price)


def plan(
    decision: HedgeDecision,
    hedge: Instrument,
    price: float,
    client_id: str,
    position: float = 0.0,
) -> Plan:
    """Size the gap in contracts, truncated to the lot step (never overshoot the target), and
    drop orders below the venue's minimum amount or cost. `position` is the hedge instrument's
    current position, used to mark orders that only reduce it as reduce-only."""
    if not decision.trade:
        return Plan(None, "no_trade", 0.0)
    raw = contracts_for(decision.gap_coin, hedge, price)
    qty = hedge.round_amount(raw)
    if qty == 0.0:
        return Plan(None, "below_lot", raw)
    if abs(qty) < hedge.min_amount:
        return Plan(None, "below_min_amount", raw)
    if hedge.min_cost > 0 and hedge.notional_usd(qty, price) < hedge.min_cost:
        return Plan(None, "below_min_cost", raw)
    reduces = position != 0.0 and qty * position < 0 and abs(qty) <= abs(position)
    intent = OrderIntent(
        client_id=client_id,
        underlying=decision.underlying,
        symbol=hedge.symbol,
        side=Side.of(qty),
        amount=abs(qty),
        reason=decision.reason,
        reduce_only=reduces,
    )
    return Plan(intent, "planned", raw)
