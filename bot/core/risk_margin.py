"""The rules that force reducing_only from account health: margin ratio and liquidation
distance, and value at risk, each with hysteresis and never overriding an operator (pure)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from bot.core.risk_state import RiskLimits, RiskState, TradingState, set_trading_state

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
