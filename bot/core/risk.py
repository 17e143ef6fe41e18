"""Pre-trade risk gate: approve or reject one order, and the trading state it depends on.

Pure: no I/O and no clock (time is `now_ms`, UTC epoch ms). The state is a frozen value; the
executor keeps the current one and replaces it with what the transition functions return:

    verdict = check_order(check, limits, state, now_ms)
    if verdict.approved: send, then state = record_sent(state, now_ms, check.notional_usd)
    on a venue reject or an error: state = record_failure(state, limits, now_ms)
    on an acknowledgement:         state = record_success(state)

Every rejection names its rule and carries the numbers that broke it, so the reject event says
exactly why. Rules are checked in a fixed order and the first one that fails is reported.

Layout: limits, state and transitions in risk_state.py; the order checks in risk_checks.py; the
margin and VaR rules in risk_margin.py. Import them from here.
"""

from bot.core.risk_checks import (
    APPROVED,
    Detail,
    OrderCheck,
    RiskVerdict,
    Rule,
    check_order,
)
from bot.core.risk_margin import (
    MARGIN_REASON,
    VAR_REASON,
    VAR_RESUME_FRACTION,
    MarginAssessment,
    MarginLevel,
    apply_margin,
    apply_var,
    assess_margin,
    liquidation_distance,
)
from bot.core.risk_state import (
    DAY_MS,
    HISTORY_MS,
    HOUR_MS,
    MINUTE_MS,
    RiskLimits,
    RiskState,
    TradingState,
    initial_state,
    record_failure,
    record_sent,
    record_success,
    reset_breaker,
    set_trading_state,
)

__all__ = [
    "APPROVED",
    "DAY_MS",
    "HISTORY_MS",
    "HOUR_MS",
    "MARGIN_REASON",
    "MINUTE_MS",
    "VAR_REASON",
    "VAR_RESUME_FRACTION",
    "Detail",
    "MarginAssessment",
    "MarginLevel",
    "OrderCheck",
    "RiskLimits",
    "RiskState",
    "RiskVerdict",
    "Rule",
    "TradingState",
    "apply_margin",
    "apply_var",
    "assess_margin",
    "check_order",
    "initial_state",
    "liquidation_distance",
    "record_failure",
    "record_sent",
    "record_success",
    "reset_breaker",
    "set_trading_state",
]
