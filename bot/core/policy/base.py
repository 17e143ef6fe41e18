"""What every trigger policy shares: the aim, the band a policy uses now, and its protocol.

Pure. A policy looks at the exposure, the market and the time and answers with a `Band`: where
the centre is, how far the delta may drift below and above it, and where a trade goes. Whether
and how much to trade is then the same for every policy (see decide.py).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, Protocol

from bot.core.book import Exposure
from bot.core.market import UnderlyingMarket

Unit = Literal["coin", "usd"]
Goal = Literal["target", "edge"]


@dataclass(frozen=True, slots=True)
class Aim:
    """Where every policy aims (config [hedge.<U>]): `target + bias`, in `unit`."""

    unit: Unit = "coin"
    target: float = 0.0
    bias: float = 0.0

    @property
    def center(self) -> float:
        return self.target + self.bias


@dataclass(frozen=True, slots=True)
class Band:
    """The no-trade band a policy uses now, in `unit`: the delta may sit anywhere in
    [center - lower, center + upper]. Outside it a trade goes `to` the centre ("target") or to
    the nearest edge ("edge")."""

    center: float
    lower: float  # half-width below the centre, > 0
    upper: float  # half-width above the centre, > 0
    unit: Unit = "coin"
    to: Goal = "target"

    @property
    def half_width(self) -> float:
        """The one number reported as `band`: the half-width, or the wider side if asymmetric."""
        return max(self.lower, self.upper)

    def problem(self) -> str | None:
        """Why this band cannot be used, or None. A computed band (gamma, vol) can come out
        non-finite or empty; such a band must stop trading, not trade on every tick."""
        for name in ("center", "lower", "upper"):
            value = getattr(self, name)
            if not math.isfinite(value):
                return f"{name} is {value}"
        for name in ("lower", "upper"):
            if getattr(self, name) <= 0:
                return f"{name} is {getattr(self, name)} (must be > 0)"
        return None

    def contains(self, delta: float, slack: float = 0.0) -> bool:
        """Is `delta` (in `unit`) inside the band, widened by `slack` on each side?"""
        return -(self.lower + slack) <= delta - self.center <= self.upper + slack

    def goal(self, delta: float) -> float:
        """Where a trade from `delta` (outside the band) goes."""
        if self.to == "target":
            return self.center
        return self.center + self.upper if delta > self.center else self.center - self.lower

    def gap_coin(self, exp: Exposure) -> float:
        """Coin delta to add (buy > 0) to bring the exposure to the centre."""
        gap = self.center - exp.delta_in(self.unit)
        return gap if self.unit == "coin" else gap / exp.price

    def as_dict(self) -> dict[str, object]:
        return {
            "unit": self.unit,
            "target": self.center,
            "band": self.half_width,
            "band_lower": self.lower,
            "band_upper": self.upper,
            "to": self.to,
        }


class TriggerPolicy(Protocol):
    """A trigger policy: a pure function of exposure, market and time to the band it uses now.
    Implementations are frozen dataclasses; anything they remember comes in as an argument."""

    @property
    def name(self) -> str:
        """Short name reported with every decision (config `kind`)."""
        ...

    def band_for(self, exp: Exposure, market: UnderlyingMarket, now_ms: int) -> Band:
        """The band to use now."""
        ...
