"""The fixed band: the first trigger policy (config `kind = "band"`).

A band of half-width `band` around target + bias; `lower` and `upper`, when given, replace the
half-width below and above the centre. Widths are in `band_unit` (default: the aim's unit):
coin, USD, or percent of the portfolio's gross notional, converted to the aim's unit at each
decision. It ignores greeks and time.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from bot.core.book import Exposure
from bot.core.market import UnderlyingMarket
from bot.core.policy.base import Aim, Band, BandUnit, Goal, width_in


@dataclass(frozen=True, slots=True)
class BandPolicy:
    band: float
    aim: Aim = field(default_factory=Aim)
    to: Goal = "target"
    lower: float | None = None  # half-width below the centre; None: `band`
    upper: float | None = None  # half-width above the centre; None: `band`
    band_unit: BandUnit | None = None  # None: the aim's unit

    def __post_init__(self) -> None:
        for name in ("band", "lower", "upper"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be finite and > 0, got {value}")

    @property
    def name(self) -> str:
        return "band"

    def band_for(self, exp: Exposure, market: UnderlyingMarket, now_ms: int) -> Band:
        unit = self.aim.unit
        given = self.band_unit or unit
        lower = self.band if self.lower is None else self.lower
        upper = self.band if self.upper is None else self.upper
        return Band(
            center=self.aim.center,
            lower=width_in(lower, given, exp, unit),
            upper=width_in(upper, given, exp, unit),
            unit=unit,
            to=self.to,
        )
