"""The pre-trade checks: approve one order or reject it with the first rule it breaks and that
rule's numbers (pure)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from types import MappingProxyType

from bot.core.orders import Side
from bot.core.risk_state import DAY_MS, HOUR_MS, MINUTE_MS, RiskLimits, RiskState, TradingState

# Absolute tolerance on contract comparisons, so float dust never flips a decision.
_EPS = 1e-9


class Rule(StrEnum):
    INVALID_ORDER = "invalid_order"
    HALTED = "halted"
    CIRCUIT_BREAKER = "circuit_breaker"
    REDUCING_ONLY = "reducing_only"
    MAX_ORDER_NOTIONAL = "max_order_notional"
    MAX_ORDER_CONTRACTS = "max_order_contracts"
    PRICE_COLLAR = "price_collar"
    MAX_POSITION = "max_position"
    MAX_POSITION_NOTIONAL = "max_position_notional"
    MAX_ORDERS_PER_MINUTE = "max_orders_per_minute"
    MAX_NOTIONAL_PER_HOUR = "max_notional_per_hour"
    MAX_NOTIONAL_PER_DAY = "max_notional_per_day"


@dataclass(frozen=True, slots=True)
class OrderCheck:
    """One order as the gate sees it. Amounts in contracts; positions signed (long > 0).

    In-flight orders on the same symbol are given per side, because either may still fill: the
    gate takes the worst case (invariant 2 in design.md), never their net.
    """

    symbol: str
    side: Side
    amount: float  # contracts, > 0
    price: float  # limit price
    notional_usd: float  # of this order
    mark: float | None  # mark or index price, the collar's reference
    position_before: float = 0.0
    in_flight_buy: float = 0.0  # contracts still open in our buy orders on this symbol
    in_flight_sell: float = 0.0

    @property
    def in_flight_same_side(self) -> float:
        return self.in_flight_buy if self.side is Side.BUY else self.in_flight_sell

    @property
    def worst_position_after(self) -> float:
        """Position if this order and every in-flight order on its side fill."""
        return self.position_before + self.side.sign * (self.in_flight_same_side + self.amount)

    @property
    def reduces(self) -> bool:
        """True when no fill outcome can grow |position| or flip it: the order points against the
        position and, with the same-side orders already in flight, does not exceed it."""
        pos = self.position_before
        if abs(pos) <= _EPS or Side.of(-pos) is not self.side:
            return False
        return self.in_flight_same_side + self.amount <= abs(pos) + _EPS


Detail = Mapping[str, float]


@dataclass(frozen=True, slots=True)
class RiskVerdict:
    approved: bool
    rule: Rule | None
    detail: Detail
    message: str

    def as_dict(self) -> dict[str, object]:
        """Payload for a reject event: the rule and the numbers."""
        return {
            "approved": self.approved,
            "rule": None if self.rule is None else str(self.rule),
            "message": self.message,
            **self.detail,
        }


APPROVED = RiskVerdict(True, None, MappingProxyType({}), "approved")


def _reject(rule: Rule, message: str, **detail: float) -> RiskVerdict:
    return RiskVerdict(False, rule, MappingProxyType(detail), message)


def _window(history: tuple[tuple[int, float], ...], now_ms: int, span_ms: int) -> list[float]:
    """Notionals of orders sent in (now - span, now]."""
    start = now_ms - span_ms
    return [n for ts, n in history if start < ts <= now_ms]


# --- the rules: each returns None to pass or a rejection ------------------------------------


def _check_valid(c: OrderCheck) -> RiskVerdict | None:
    numbers = (c.amount, c.price, c.notional_usd, c.position_before, c.in_flight_buy)
    if not all(math.isfinite(x) for x in (*numbers, c.in_flight_sell)):
        return _reject(Rule.INVALID_ORDER, "non-finite number in order", amount=c.amount)
    if c.amount <= 0 or c.price <= 0 or c.notional_usd < 0:
        return _reject(
            Rule.INVALID_ORDER,
            "amount and price must be > 0, notional >= 0",
            amount=c.amount,
            price=c.price,
            notional_usd=c.notional_usd,
        )
    return None


def _check_state(c: OrderCheck, state: RiskState, now_ms: int) -> RiskVerdict | None:
    if state.trading_state is TradingState.HALTED:
        return _reject(Rule.HALTED, f"trading halted ({state.state_reason or 'no reason'})")
    if state.breaker_blocks(now_ms):
        until = state.breaker_open_until_ms
        return _reject(
            Rule.CIRCUIT_BREAKER,
            "circuit breaker open after consecutive failures",
            consecutive_failures=state.consecutive_failures,
            open_until_ms=-1 if until is None else until,  # -1: until an operator resets it
        )
    if state.trading_state is TradingState.REDUCING_ONLY and not c.reduces:
        return _reject(
            Rule.REDUCING_ONLY,
            "reducing-only: order would not reduce |position|",
            position_before=c.position_before,
            worst_position_after=c.worst_position_after,
            amount=c.amount,
        )
    return None


def _check_size(c: OrderCheck, lim: RiskLimits) -> RiskVerdict | None:
    if c.notional_usd > lim.max_order_notional_usd:
        return _reject(
            Rule.MAX_ORDER_NOTIONAL,
            "order notional above limit",
            notional_usd=c.notional_usd,
            limit_usd=lim.max_order_notional_usd,
        )
    if lim.max_order_contracts is not None and c.amount > lim.max_order_contracts + _EPS:
        return _reject(
            Rule.MAX_ORDER_CONTRACTS,
            "order contracts above limit",
            amount=c.amount,
            limit=lim.max_order_contracts,
        )
    return None


def _check_collar(c: OrderCheck, lim: RiskLimits) -> RiskVerdict | None:
    if c.mark is None or not math.isfinite(c.mark) or c.mark <= 0:
        # No reference, no proof the price is sane: a fat finger must not pass by default.
        return _reject(
            Rule.PRICE_COLLAR, "no mark price to check the limit price against", price=c.price
        )
    distance_bps = abs(c.price - c.mark) / c.mark * 10_000
    if distance_bps > lim.price_collar_bps:
        return _reject(
            Rule.PRICE_COLLAR,
            "limit price too far from mark",
            price=c.price,
            mark=c.mark,
            distance_bps=distance_bps,
            collar_bps=lim.price_collar_bps,
        )
    return None


def _check_position(c: OrderCheck, lim: RiskLimits) -> RiskVerdict | None:
    # An order that can only shrink |position| is always allowed: it is how an over-limit
    # position (e.g. after a limit was lowered) gets back under the limit.
    if c.reduces:
        return None
    after = c.worst_position_after
    limit = lim.position_limit(c.symbol)
    if limit is not None and abs(after) > limit + _EPS:
        return _reject(
            Rule.MAX_POSITION,
            "position after order (in-flight included) above limit",
            position_before=c.position_before,
            in_flight=c.in_flight_same_side,
            amount=c.amount,
            position_after=after,
            limit=limit,
        )
    usd_limit = lim.max_position_notional_usd
    if usd_limit is not None:
        # Notional is linear in contracts for linear and inverse alike, so scale the order's.
        after_usd = abs(after) * c.notional_usd / c.amount
        if after_usd > usd_limit:
            return _reject(
                Rule.MAX_POSITION_NOTIONAL,
                "position notional after order (in-flight included) above limit",
                position_after=after,
                position_after_usd=after_usd,
                limit_usd=usd_limit,
            )
    return None


def _check_rates(
    c: OrderCheck, lim: RiskLimits, state: RiskState, now_ms: int
) -> RiskVerdict | None:
    if lim.max_orders_per_minute is not None:
        sent = len(_window(state.history, now_ms, MINUTE_MS))
        if sent + 1 > lim.max_orders_per_minute:
            return _reject(
                Rule.MAX_ORDERS_PER_MINUTE,
                "too many orders in the last minute",
                orders_last_minute=sent,
                limit=lim.max_orders_per_minute,
            )
    windows = (
        (Rule.MAX_NOTIONAL_PER_HOUR, HOUR_MS, lim.max_notional_per_hour_usd, "hour"),
        (Rule.MAX_NOTIONAL_PER_DAY, DAY_MS, lim.max_notional_per_day_usd, "day"),
    )
    for rule, span, limit, name in windows:
        if limit is None:
            continue
        used = sum(_window(state.history, now_ms, span))
        if used + c.notional_usd > limit:
            return _reject(
                rule,
                f"notional in the rolling {name} would exceed the limit",
                used_usd=used,
                notional_usd=c.notional_usd,
                limit_usd=limit,
            )
    return None


def check_order(
    check: OrderCheck, limits: RiskLimits, state: RiskState, now_ms: int
) -> RiskVerdict:
    """Approve the order, or reject it with the first rule it breaks and that rule's numbers."""
    for verdict in (
        _check_valid(check),
        _check_state(check, state, now_ms),
        _check_size(check, limits),
        _check_collar(check, limits),
        _check_position(check, limits),
        _check_rates(check, limits, state, now_ms),
    ):
        if verdict is not None:
            return verdict
    return APPROVED
