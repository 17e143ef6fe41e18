"""[sim] and [[positions]]: the simulated exchange (price models, fees, spread, depth, latency,
fills, rejects, correlation, funding) and the starting positions opened on it."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import (
    Field,
    model_validator,
)

from bot.config_base import Section
from bot.cross_config import SimCorrelation
from bot.routing_config import FundingRate8h, SimAccountConfig


class SimUnderlying(Section):
    price: float = Field(gt=0, description="starting index price in USD")
    vol: float = Field(default=0.6, gt=0, le=5, description="GBM volatility and option IV")
    drift: float = Field(default=0.0, description="annual drift")
    jump_intensity: float = Field(default=4.0, ge=0, description="jumps per year")
    jump_mean: float = 0.0
    jump_std: float = Field(default=0.03, ge=0)
    # The price path's model (README "Markets to test on"); the fields below belong to one model.
    model: Literal["gbm", "jumps", "heston", "regime"] = Field(
        default="jumps", description="gbm, jumps (gbm + Merton jumps), heston or regime"
    )
    kappa: float = Field(default=2.0, gt=0, description="heston: variance mean reversion, 1/year")
    theta: float | None = Field(default=None, gt=0, description="heston: long-run variance (vol^2)")
    xi: float = Field(default=0.5, ge=0, description="heston: vol of variance")
    rho: float = Field(default=-0.5, ge=-1, le=1, description="heston: price/variance correlation")
    v0: float | None = Field(default=None, gt=0, description="heston: starting variance (theta)")
    vol2: float | None = Field(default=None, gt=0, le=5, description="regime: stressed vol (2 vol)")
    drift2: float = Field(default=0.0, description="regime: stressed annual drift")
    switch_rate: float = Field(default=12.0, ge=0, description="regime: calm to stressed, 1/year")
    switch_back_rate: float = Field(default=52.0, ge=0, description="regime: back to calm, 1/year")


class SimConfig(Section):
    seed: int = 1
    speed: float = Field(default=1.0, gt=0, description="simulated seconds per real second")
    tick_ms: int = Field(default=1000, gt=0, description="simulated ms between price updates")
    latency_ms: int = Field(default=50, ge=0, description="simulated order round trip")
    spread_bps: float = Field(default=2.0, ge=0)
    depth_levels: int = Field(default=20, ge=1)
    level_notional_usd: float = Field(default=250_000.0, gt=0, description="size of each level")
    level_step_bps: float = Field(default=1.0, gt=0)
    maker_fee: float = 0.0002
    taker_fee: float = 0.0005
    reject_rate: float = Field(default=0.0, ge=0, lt=1, description="random reject probability")
    partial_fill_rate: float = Field(
        default=0.0, ge=0, le=1, description="probability a fill comes in parts"
    )
    option_spread_bps: float = Field(
        default=50.0, ge=0, description="option bid/ask spread, in bps of the option's mark"
    )
    balances: dict[str, float] = Field(
        default_factory=lambda: {"USDT": 1_000_000.0, "USDC": 1_000_000.0},
        description="starting cash and coin balances by currency (USDT, USDC, BTC, ...)",
    )
    state_file: Path | None = Field(
        default=None, description="persist the simulated exchange here so restarts resume it"
    )
    order_history: int = Field(
        default=1000,
        ge=1,
        description="finished orders (with their fills) the simulated exchange remembers; older "
        "ones are forgotten, as a venue's history is bounded (the journal keeps the record)",
    )
    # Drills (fault injection through the real entry point); both off by default.
    resend_fills_on_connect: bool = Field(
        default=False,
        description="after restoring state_file, re-send every fill on the fills stream "
        "(a reconnect replaying ccxt's trade cache)",
    )
    hide_new_orders_ms: int = Field(
        default=0, ge=0, description="fetch_order does not see an order this long after create"
    )
    unreachable_orders: int = Field(
        default=0,
        ge=0,
        description="the first N orders never reach the venue and no call about them is "
        "ever answered (stuck orders)",
    )
    underlyings: dict[str, SimUnderlying] = Field(
        default_factory=lambda: {"BTC": SimUnderlying(price=60_000.0)}
    )
    correlation: SimCorrelation | None = Field(
        default=None,
        description="correlated underlyings, breakdown regime (none: independent)",
    )
    funding_rate: FundingRate8h = Field(
        default=0.0, description="every perp's funding rate per 8 hours"
    )
    funding_rates: dict[str, FundingRate8h] = Field(
        default_factory=dict, description="by perp symbol, per 8 hours, over funding_rate"
    )
    accounts: dict[str, SimAccountConfig] = Field(
        default_factory=dict,
        description="[sim.accounts.<name>]: fees, spread, depth or funding of one simulated "
        "account that differ from the above (the price path is the same)",
    )

    @model_validator(mode="after")
    def _correlated_are_listed(self) -> SimConfig:
        if self.correlation is not None:
            missing = [u for u in self.correlation.underlyings if u not in self.underlyings]
            if missing:
                raise ValueError(
                    f"correlation.underlyings: {missing} not in sim.underlyings "
                    f"({sorted(self.underlyings)})"
                )
        return self

    def for_account(self, name: str) -> SimConfig:
        """This config with the account's overrides applied."""
        over = self.accounts.get(name)
        if over is None:
            return self
        changes = {k: v for k, v in over.model_dump().items() if v is not None}
        return self.model_copy(update=changes) if changes else self


class PositionConfig(Section):
    """A starting position. On the simulated exchange it is opened at start; `symbol` names a
    listed instrument, or the other fields describe one the simulator lists for the run."""

    account: str = "sim"
    symbol: str | None = None
    underlying: str | None = None
    kind: Literal["spot", "perp", "future", "option"] | None = None
    settlement: Literal["linear", "inverse"] = "linear"
    option_type: Literal["call", "put"] | None = None
    strike: float | None = Field(default=None, gt=0)
    expiry_days: float | None = Field(default=None, gt=0, le=3660)
    qty: float = Field(ge=-1e9, le=1e9)

    @model_validator(mode="after")
    def _symbol_or_description(self) -> PositionConfig:
        if self.symbol is None and (self.underlying is None or self.kind is None):
            raise ValueError("give either symbol, or underlying and kind")
        if self.kind == "option" and (
            self.option_type is None or self.strike is None or self.expiry_days is None
        ):
            raise ValueError("an option needs option_type, strike and expiry_days")
        if self.kind == "future" and self.expiry_days is None:
            raise ValueError("a future needs expiry_days")
        return self
