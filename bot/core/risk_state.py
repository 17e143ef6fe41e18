"""The risk gate's limits and trading state, and the transitions that move the state (pure: time
is `now_ms`, UTC epoch ms; the state is a frozen value the caller replaces)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from enum import StrEnum
from types import MappingProxyType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bot.config_execution import RiskConfig

MINUTE_MS = 60_000
HOUR_MS = 3_600_000
DAY_MS = 86_400_000
# Sent-order history older than the longest window is dropped: it can no longer matter.
HISTORY_MS = DAY_MS


class TradingState(StrEnum):
    ACTIVE = "active"
    REDUCING_ONLY = "reducing_only"  # only orders that shrink |position| pass
    HALTED = "halted"  # nothing passes


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


# --- transitions ------------------------------------------------------------------------------


def record_sent(state: RiskState, ts_ms: int, notional_usd: float) -> RiskState:
    """An order was handed to the venue: it counts against the rolling windows."""
    cutoff = ts_ms - HISTORY_MS
    kept = tuple(e for e in state.history if cutoff < e[0])
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
