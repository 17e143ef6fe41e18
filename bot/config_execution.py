"""[execution] and [risk]: how orders are worked (taker, maker-first, TWAP; slippage and fee
guards, timeouts) and the pre-trade risk limits."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from bot.config_base import Section

ExecutionMode = Literal["taker", "maker_first", "twap"]


class InstrumentExecution(Section):
    """Per-instrument overrides of the execution defaults; a key left unset keeps the default."""

    mode: ExecutionMode | None = None
    max_slippage_bps: float | None = Field(default=None, gt=0, le=1000)
    on_slippage: Literal["shrink", "refuse"] | None = None
    max_cost_bps: float | None = Field(default=None, gt=0)
    cost_risk_ratio: float | None = Field(default=None, gt=0)
    twap_depth_fraction: float | None = Field(default=None, gt=0, le=10)


class ExecutionConfig(Section):
    """How approved intents are worked (bot/execution/executor/).

    Cost rule (fee guard): an order is skipped when its expected cost (fee + slippage of the
    book walk, in USD) exceeds `max_cost_bps` of its notional, or exceeds `cost_risk_ratio` times
    the risk it removes: |delta removed in USD| x `cost_sigma` x sqrt(`cost_horizon_s` in years),
    the one-sigma move of the unhedged delta over the horizon.
    """

    mode: ExecutionMode = Field(
        default="taker", description="taker | maker_first | twap; override per symbol below"
    )
    max_slippage_bps: float = Field(
        default=20.0, gt=0, le=1000, description="max expected average fill price from mid"
    )
    on_slippage: Literal["shrink", "refuse"] = Field(
        default="shrink", description="when the walk exceeds the cap: send what fits, or nothing"
    )
    allow_no_book: bool = Field(
        default=False,
        description="with no fresh book, send a limit capped at mid +/- max_slippage_bps "
        "(False: refuse, never send blind)",
    )
    book_max_age_s: float = Field(default=5.0, gt=0, description="older books count as none")
    max_fee_bps: float = Field(default=10.0, ge=0, description="refuse orders costlier than this")
    max_cost_bps: float | None = Field(
        default=30.0, gt=0, description="skip orders whose fee + slippage exceeds this"
    )
    cost_risk_ratio: float | None = Field(
        default=1.0, gt=0, description="skip orders costing more than this x the risk removed"
    )
    cost_sigma: float = Field(default=0.6, gt=0, le=10, description="annual vol for the rule")
    cost_horizon_s: float = Field(default=3600.0, gt=0, description="horizon of the risk removed")
    maker_reprices: int = Field(default=3, ge=0, le=100, description="post-only re-prices")
    maker_reprice_s: float = Field(default=2.0, gt=0, description="wait per post-only order")
    maker_timeout_s: float = Field(default=10.0, gt=0, description="then fall back to taker")
    twap_depth_fraction: float = Field(
        default=0.25, gt=0, le=10, description="slice orders above this x visible depth"
    )
    twap_duration_s: float = Field(default=60.0, gt=0, description="spread the slices over this")
    twap_max_slices: int = Field(default=10, ge=2, le=1000)
    order_timeout_s: float = Field(default=10.0, gt=0)
    on_shutdown: Literal["cancel", "finish"] = Field(
        default="cancel",
        description="orders working at shutdown: cancel them, or let them finish (both bounded "
        "by shutdown_timeout_s; what is still open then is cancelled)",
    )
    shutdown_timeout_s: float = Field(default=10.0, gt=0)
    lookup_grace_s: float = Field(
        default=60.0,
        ge=0,
        description="an order lookups do not find stays in flight this long after it was sent "
        "before it counts as never arrived (venues take time to show new orders)",
    )
    stuck_alert_s: float = Field(
        default=30.0, gt=0, description="first gap between alerts about a stuck order"
    )
    stuck_alert_max_s: float = Field(
        default=900.0, gt=0, description="the gap doubles after each alert up to this"
    )
    recover_open_orders: Literal["cancel", "keep"] = Field(
        default="cancel",
        description="orders found open at the venue after a restart: cancel them (their fills "
        "are then final before positions are read) or keep working them",
    )
    client_id_prefix: str = Field(
        default="hb", pattern=r"^[A-Za-z0-9]{1,8}$", description="our orders' client id prefix"
    )
    instruments: dict[str, InstrumentExecution] = Field(
        default_factory=dict, description="overrides by hedge symbol (case-insensitive)"
    )

    def for_symbol(self, symbol: str) -> ExecutionConfig:
        """These settings with the symbol's overrides applied. Keys are matched
        case-insensitively because config keys are lower-cased on load."""
        over = self.instruments.get(symbol)
        if over is None:
            over = next(
                (v for k, v in self.instruments.items() if k.lower() == symbol.lower()), None
            )
        if over is None:
            return self
        changes = {k: v for k, v in over.model_dump().items() if v is not None}
        return self.model_copy(update=changes) if changes else self


class RiskConfig(Section):
    """Pre-trade limits (bot/core/risk.py). A limit left at None is not checked."""

    max_order_notional_usd: float = Field(default=1_000_000.0, gt=0)
    max_order_contracts: float | None = Field(default=None, gt=0)
    max_notional_per_hour_usd: float | None = Field(
        default=None, gt=0, description="sent order notional in any rolling hour"
    )
    max_notional_per_day_usd: float | None = Field(
        default=None, gt=0, description="sent order notional in any rolling 24 hours"
    )
    max_orders_per_minute: int | None = Field(
        default=30, gt=0, description="orders sent in any rolling minute (storm guard)"
    )
    max_position_contracts: dict[str, float] = Field(
        default_factory=dict,
        description="max |position| per symbol, in contracts, in-flight orders included",
    )
    max_position_contracts_default: float | None = Field(
        default=None, gt=0, description="max |position| for symbols not in max_position_contracts"
    )
    max_position_notional_usd: float | None = Field(
        default=None, gt=0, description="max |position| per instrument in USD at the order price"
    )
    price_collar_bps: float = Field(
        default=100.0, gt=0, le=10_000, description="max distance of a limit price from the mark"
    )
    breaker_failures: int = Field(
        default=5, ge=1, description="consecutive venue rejects/errors that open the breaker"
    )
    breaker_cooldown_s: float | None = Field(
        default=300.0, gt=0, description="breaker closes after this; None: operator reset only"
    )
    margin_ratio_warn: float | None = Field(
        default=0.5, gt=0, description="maintenance margin / equity above which to warn"
    )
    margin_ratio_reduce: float | None = Field(
        default=0.75, gt=0, description="... above which to trade reducing-only"
    )
    liquidation_distance_warn: float | None = Field(
        default=0.15, gt=0, lt=1, description="|mark - liquidation| / mark below which to warn"
    )
    liquidation_distance_reduce: float | None = Field(
        default=0.08, gt=0, lt=1, description="... below which to trade reducing-only"
    )
    var_limit_usd: float | None = Field(
        default=None, gt=0, description="1-day 99% VaR of the book above which to reduce only"
    )
    scenario_spot_pct: list[float] = Field(
        default_factory=lambda: [-30.0, -20.0, -10.0, -5.0, 0.0, 5.0, 10.0, 20.0, 30.0],
        min_length=1,
        description="spot shocks of the scenario grid, percent",
    )
    scenario_iv_points: list[float] = Field(
        default_factory=lambda: [-20.0, -10.0, 0.0, 10.0, 20.0],
        min_length=1,
        description="implied-vol shocks of the scenario grid, vol points",
    )
    var_sample_s: float = Field(
        default=3600.0, gt=0, le=86_400, description="index sampled this often for VaR"
    )
    var_window: int = Field(default=250, ge=2, le=100_000, description="returns kept for VaR")
    var_min_samples: int = Field(
        default=100, ge=1, description="no VaR (null) until this many returns are recorded"
    )
    initial_state: Literal["active", "reducing_only", "halted"] = "active"
    halt_file: Path | None = Field(
        default=None, description="kill switch: while this file exists, trading is halted"
    )

    @model_validator(mode="after")
    def _reduce_beyond_warn(self) -> RiskConfig:
        # The warn level must come first, and the gap between them is the hysteresis that keeps
        # a margin-forced reducing_only state from flapping.
        mr_w, mr_r = self.margin_ratio_warn, self.margin_ratio_reduce
        if mr_w is not None and mr_r is not None and mr_r < mr_w:
            raise ValueError("margin_ratio_reduce must be >= margin_ratio_warn")
        ld_w, ld_r = self.liquidation_distance_warn, self.liquidation_distance_reduce
        if ld_w is not None and ld_r is not None and ld_r > ld_w:
            raise ValueError("liquidation_distance_reduce must be <= liquidation_distance_warn")
        bad = [x for x in self.scenario_spot_pct if not -100.0 < x < 1000.0]
        if bad:
            # a -100 % shock is a zero price: no option or inverse contract has a value there
            raise ValueError(f"scenario_spot_pct values must be in (-100, 1000) percent, got {bad}")
        if self.var_min_samples > self.var_window:
            raise ValueError(
                f"var_min_samples ({self.var_min_samples}) must be <= var_window "
                f"({self.var_window}): VaR would never be reported"
            )
        return self
