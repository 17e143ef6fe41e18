"""Pre-trade risk gate: approve or reject one order, and the trading state it depends on.

Pure: no I/O and no clock (time is `now_ms`, UTC epoch ms). The state is a frozen value; the
executor keeps the current one and replaces it with what the transition functions return:

    verdict = check_order(check, limits, state, now_ms)
    if verdict.approved: send, then state = record_sent(state, now_ms, check.notional_usd)
    on a venue reject or an error: state = record_failure(state, limits, now_ms)
    on an acknowledgement:         state = record_success(state)

Every rejection names its rule and carries the numbers that broke it, so the reject event says
exactly why. Rules are checked in a fixed order and the first one that fails is reported.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal

from bot.core.orders import Side

if TYPE_CHECKING:
    from bot.config import RiskConfig

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Sent-order history older than the longest window is dropped: it can no longer matter.
HISTORY_MS = DAY_MS
# Absolute tolerance on contract comparisons, so float dust never flips a decision.
_EPS = 1e-9


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING_ONLY = "reducing_only"  # only orders that shrink |position| pass
    HALTED = "halted"  # nothing passes


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


def _frozen_map(m: Mapping[str, float]) -> Mapping[str, float]:
    return MappingProxyType(dict(m))


@dataclass(frozen=True, slots=True)
class RiskLimits:
    """The limits, as plain values. None switches a rule off (the collar and breaker are always
    on: an order with no sane reference price or after a run of failures is never sent)."""

    max_order_notional_usd: float
    max_order_contracts: float | None = None
    max_notional_per_hour_usd: float | None = None
    max_notional_per_day_usd: float | None = None
    max_orders_per_minute: int | None = None
    max_position_contracts: Mapping[str, float] = field(default_factory=dict)
    max_position_contracts_default: float | None = None
    max_position_notional_usd: float | None = None
    price_collar_bps: float = 100.0
    breaker_failures: int = 5
    breaker_cooldown_ms: int | None = 300_000
    margin_ratio_warn: float | None = None
    margin_ratio_reduce: float | None = None
    liquidation_distance_warn: float | None = None
    liquidation_distance_reduce: float | None = None

    def __post_init__(self) -> None:
        # A read-only copy keeps the frozen value frozen even if the caller's dict changes.
        object.__setattr__(self, "max_position_contracts", _frozen_map(self.max_position_contracts))
        if self.breaker_failures < 1:
            raise ValueError("breaker_failures must be >= 1")
        if not self.price_collar_bps > 0:
            raise ValueError("price_collar_bps must be > 0")

    @classmethod
    def from_config(cls, cfg: RiskConfig) -> RiskLimits:
        cooldown = cfg.breaker_cooldown_s
        return cls(
            max_order_notional_usd=cfg.max_order_notional_usd,
            max_order_contracts=cfg.max_order_contracts,
            max_notional_per_hour_usd=cfg.max_notional_per_hour_usd,
            max_notional_per_day_usd=cfg.max_notional_per_day_usd,
            max_orders_per_minute=cfg.max_orders_per_minute,
            max_position_contracts=cfg.max_position_contracts,
            max_position_contracts_default=cfg.max_position_contracts_default,
            max_position_notional_usd=cfg.max_position_notional_usd,
            price_collar_bps=cfg.price_collar_bps,
            breaker_failures=cfg.breaker_failures,
            breaker_cooldown_ms=None if cooldown is None else round(cooldown * 1000),
            margin_ratio_warn=cfg.margin_ratio_warn,
            margin_ratio_reduce=cfg.margin_ratio_reduce,
            liquidation_distance_warn=cfg.liquidation_distance_warn,
            liquidation_distance_reduce=cfg.liquidation_distance_reduce,
        )

    def position_limit(self, symbol: str) -> float | None:
        return self.max_position_contracts.get(symbol, self.max_position_contracts_default)


@dataclass(frozen=True, slots=True)
class RiskState:
    trading_state: TradingState = TradingState.ACTIVE
    state_reason: str = ""  # who/what set the trading state: "operator", "margin", "kill_file"...
    history: tuple[tuple[int, float], ...] = ()  # (ts_ms, notional_usd) of sent orders
    consecutive_failures: int = 0
    breaker_open: bool = False
    breaker_open_until_ms: int | None = None  # None while open: until an operator resets it

    def breaker_blocks(self, now_ms: int) -> bool:
        if not self.breaker_open:
            return False
        return self.breaker_open_until_ms is None or now_ms < self.breaker_open_until_ms


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
    return [n for ts, n in history if now_ms - span_ms < ts <= now_ms]


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


# --- transitions ------------------------------------------------------------------------------


def record_sent(state: RiskState, ts_ms: int, notional_usd: float) -> RiskState:
    """An order was handed to the venue: it counts against the rolling windows."""
    kept = tuple((ts, n) for ts, n in state.history if ts_ms - HISTORY_MS < ts)
    return replace(state, history=(*kept, (ts_ms, notional_usd)))


def record_failure(state: RiskState, limits: RiskLimits, now_ms: int) -> RiskState:
    """A venue reject or an error on send. Risk-gate rejections are not failures: counting them
    would let a halt keep the breaker open forever. In the half-open state (cooldown over, not
    yet a success) one more failure reopens the breaker at once."""
    failures = state.consecutive_failures + 1
    if failures < limits.breaker_failures:
        return replace(state, consecutive_failures=failures)
    until = None if limits.breaker_cooldown_ms is None else now_ms + limits.breaker_cooldown_ms
    return replace(
        state, consecutive_failures=failures, breaker_open=True, breaker_open_until_ms=until
    )


def record_success(state: RiskState) -> RiskState:
    """The venue accepted an order: the failure run is over and the breaker closes."""
    return replace(state, consecutive_failures=0, breaker_open=False, breaker_open_until_ms=None)


def reset_breaker(state: RiskState) -> RiskState:
    """Operator reset."""
    return record_success(state)


def set_trading_state(state: RiskState, trading_state: TradingState, reason: str) -> RiskState:
    return replace(state, trading_state=TradingState(trading_state), state_reason=reason)


def initial_state(trading_state: str = "active") -> RiskState:
    """The state at start, from RiskConfig.initial_state."""
    return RiskState(trading_state=TradingState(trading_state), state_reason="config")


# --- margin and liquidation distance ----------------------------------------------------------

MarginLevel = Literal["ok", "warn", "reduce"]
_LEVEL_RANK: dict[MarginLevel, int] = {"ok": 0, "warn": 1, "reduce": 2}
MARGIN_REASON = "margin"


@dataclass(frozen=True, slots=True)
class MarginAssessment:
    level: MarginLevel
    metric: str | None  # "margin_ratio" | "liquidation_distance", the worst one; None when ok
    value: float | None
    threshold: float | None
    message: str


def liquidation_distance(mark: float, liquidation_price: float) -> float:
    """|mark - liquidation| / mark, the fraction the price must move to liquidate."""
    return abs(mark - liquidation_price) / mark


def _level_high(
    value: float, warn: float | None, reduce: float | None
) -> tuple[MarginLevel, float | None]:
    # For the margin ratio higher is worse.
    if reduce is not None and value >= reduce:
        return "reduce", reduce
    if warn is not None and value >= warn:
        return "warn", warn
    return "ok", None


def _level_low(
    value: float, warn: float | None, reduce: float | None
) -> tuple[MarginLevel, float | None]:
    # For the liquidation distance lower is worse.
    if reduce is not None and value <= reduce:
        return "reduce", reduce
    if warn is not None and value <= warn:
        return "warn", warn
    return "ok", None


def assess_margin(
    limits: RiskLimits,
    margin_ratio: float | None = None,
    liquidation_distance: float | None = None,
) -> MarginAssessment:
    """Grade what the venue reports (either may be missing; a venue that reports neither is
    simply `ok`). margin_ratio = maintenance margin / equity; liquidation_distance as above."""
    found: list[tuple[MarginLevel, str, float, float | None]] = []
    if margin_ratio is not None and math.isfinite(margin_ratio):
        lvl, thr = _level_high(margin_ratio, limits.margin_ratio_warn, limits.margin_ratio_reduce)
        found.append((lvl, "margin_ratio", margin_ratio, thr))
    if liquidation_distance is not None and math.isfinite(liquidation_distance):
        lvl, thr = _level_low(
            liquidation_distance,
            limits.liquidation_distance_warn,
            limits.liquidation_distance_reduce,
        )
        found.append((lvl, "liquidation_distance", liquidation_distance, thr))
    worst = max(found, key=lambda f: _LEVEL_RANK[f[0]], default=None)
    if worst is None or worst[0] == "ok":
        return MarginAssessment("ok", None, None, None, "margin ok")
    level, metric, value, threshold = worst
    return MarginAssessment(level, metric, value, threshold, f"{metric} beyond {level} threshold")


def apply_margin(state: RiskState, assessment: MarginAssessment) -> RiskState:
    """Force reducing_only on `reduce`; lift it only when margin is back to `ok` and it was the
    margin that set it (never overrides an operator's halt or reducing_only). The warn band in
    between is hysteresis, so the state does not flap around one threshold."""
    if assessment.level == "reduce" and state.trading_state is TradingState.ACTIVE:
        return set_trading_state(state, TradingState.REDUCING_ONLY, MARGIN_REASON)
    if (
        assessment.level == "ok"
        and state.trading_state is TradingState.REDUCING_ONLY
        and state.state_reason == MARGIN_REASON
    ):
        return set_trading_state(state, TradingState.ACTIVE, "margin_recovered")
    return state


# --- value at risk ----------------------------------------------------------------------------

VAR_REASON = "var_limit"
VAR_RESUME_FRACTION = 0.9  # back to active only below 90% of the limit: hysteresis


def apply_var(state: RiskState, var_usd: float | None, limit_usd: float | None) -> RiskState:
    """Force reducing_only when the book's VaR exceeds the limit; lift it only when VaR is back
    below VAR_RESUME_FRACTION of the limit and the VaR rule set it (never overrides an operator
    or the margin rule). No VaR (too little history) changes nothing: no number is made up."""
    if var_usd is None or limit_usd is None:
        return state
    if var_usd > limit_usd and state.trading_state is TradingState.ACTIVE:
        return set_trading_state(state, TradingState.REDUCING_ONLY, VAR_REASON)
    if (
        var_usd < VAR_RESUME_FRACTION * limit_usd
        and state.trading_state is TradingState.REDUCING_ONLY
        and state.state_reason == VAR_REASON
    ):
        return set_trading_state(state, TradingState.ACTIVE, "var_recovered")
    return state
