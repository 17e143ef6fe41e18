"""Config models for routing one underlying's hedge across several instruments and venues
(README "Several hedge instruments: routing"), and the simulated exchange's per-account market
differences that let a paper run compare venues.

The hedge's own `account`/`instrument` stays the reference line (its ticker gives the price,
the staleness check and the corridor); `candidates` lists every line an order may go to, the
reference included.
"""

from __future__ import annotations

from typing import Annotated, Self

from pydantic import Field, model_validator

from bot.config_base import Section

# A funding rate per 8 hours; beyond 5 % is a typo (or a percent), never a market.
FundingRate8h = Annotated[float, Field(ge=-0.05, le=0.05)]


class CandidateConfig(Section):
    """One instrument a hedge order may be routed to, with its own position limit."""

    account: str = "sim"
    instrument: str = Field(description="a delta-one contract of the underlying")
    max_position_usd: float | None = Field(
        default=None, gt=0, description="max |position| in USD at the index, in-flight included"
    )
    max_position_coin: float | None = Field(
        default=None, gt=0, description="max |position| in coin, in-flight included"
    )

    @model_validator(mode="after")
    def _one_limit(self) -> Self:
        if (self.max_position_usd is None) == (self.max_position_coin is None):
            raise ValueError("give exactly one of max_position_usd and max_position_coin")
        return self

    def limit_coin(self, price: float) -> float:
        """The position limit in coin at the index price `price`."""
        if self.max_position_coin is not None:
            return self.max_position_coin
        assert self.max_position_usd is not None
        return self.max_position_usd / price if price > 0 else 0.0


class RoutingConfig(Section):
    """How candidates are compared. Funding rates come from each venue on a timer; a rate older
    than `funding_max_age_s` (or none yet) counts as zero and shows as stale in the decision."""

    holding_horizon_h: float = Field(
        default=8.0, ge=0, le=24 * 365, description="funding expected over this holding time"
    )
    funding_refresh_s: float = Field(
        default=300.0, gt=0, description="read funding rates this often"
    )
    funding_max_age_s: float = Field(
        default=3600.0, gt=0, description="an older funding rate counts as zero (stale)"
    )


class SimAccountConfig(Section):
    """What one simulated account's market does differently from `[sim]` (same price path)."""

    taker_fee: float | None = None
    maker_fee: float | None = None
    spread_bps: float | None = Field(default=None, ge=0)
    level_notional_usd: float | None = Field(default=None, gt=0)
    funding_rate: FundingRate8h | None = Field(
        default=None, description="every perp's funding rate per 8 hours"
    )
    funding_rates: dict[str, FundingRate8h] | None = Field(
        default=None, description="by perp symbol, per 8 hours (replaces [sim] funding_rates)"
    )
