"""[hedge.<U>]: how one underlying is hedged (account, instrument, unit, target, policy, cross
hedge and routing candidates)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from bot.config_base import Section
from bot.cross_config import CrossConfig
from bot.policy_config import PolicyConfig
from bot.routing_config import CandidateConfig


class HedgeConfig(Section):
    """How one underlying is hedged."""

    account: str = "sim"
    instrument: str = Field(description="symbol of the hedge instrument, e.g. BTC/USDT:USDT")
    unit: Literal["coin", "usd"] = "coin"
    target: float = 0.0
    bias: float = Field(default=0.0, description="added to target, in `unit`")
    hedge_ratio: float = Field(default=1.0, gt=0, le=1, description="share of the gap to trade")
    policy: PolicyConfig = Field(description="[hedge.<U>.policy]: when to trade (kind = ...)")
    enabled: bool = True
    cross: CrossConfig | None = Field(
        default=None,
        description="[hedge.<U>.cross]: hedge with other underlyings' hedges by beta (README)",
    )
    candidates: list[CandidateConfig] = Field(
        default_factory=list,
        description="[[hedge.<U>.candidates]]: route each order to the cheapest of these "
        "(the hedge's own account/instrument among them); empty: always the one instrument",
    )

    def lines(self) -> list[tuple[str, str]]:
        """Every (account, symbol) this hedge may trade: the reference first, then the routing
        candidates. Streams, market checks, recording and flatten cover all of them."""
        keys = [(self.account, self.instrument)]
        for c in self.candidates:
            if (c.account, c.instrument) not in keys:
                keys.append((c.account, c.instrument))
        return keys

    @model_validator(mode="after")
    def _candidates_consistent(self) -> HedgeConfig:
        if not self.candidates:
            return self
        keys = [(c.account, c.instrument) for c in self.candidates]
        dup = sorted({k for k in keys if keys.count(k) > 1})
        if dup:
            raise ValueError(f"candidates: listed twice: {', '.join(f'{a}:{i}' for a, i in dup)}")
        if (self.account, self.instrument) not in keys:
            raise ValueError(
                f"candidates: must include the hedge's own account/instrument "
                f"({self.account}:{self.instrument}), the reference price of the underlying"
            )
        return self
