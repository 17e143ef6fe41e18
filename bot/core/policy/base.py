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
BandUnit = Literal["coin", "usd", "pct_gross"]  # how a configured width is expressed
Goal = Literal["target", "edge"]


def width_in(value: float, band_unit: BandUnit, exp: Exposure, unit: Unit) -> float:
    """A width given in `band_unit` expressed in the aim's `unit`. "pct_gross" is percent of
    the portfolio's gross notional (Exposure.gross_usd): 0.5 means 0.5 % of it."""
    if band_unit == "coin":
        coin = value
    elif band_unit == "usd":
        coin = value / exp.price
    else:
        coin = value / 100.0 * exp.gross_usd / exp.price
    return coin if unit == "coin" else coin * exp.price


def policy_vol(exp: Exposure, market: UnderlyingMarket) -> float:
    """The volatility a policy uses: the options' |gamma|-weighted implied vol where the book
    holds options, else the market's vol (the hedger's EWMA of realized returns; nan if none)."""
    return exp.option_iv if math.isfinite(exp.option_iv) else market.vol


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


@dataclass(frozen=True, slots=True)
class Modifiers:
    """Rules any policy can take on top of its band (config [hedge.<U>.policy]); None: off.

    time_fallback_ms: inside the band but more than `inner` x the band's side from the centre,
    trade to the centre once this long has passed since the last trade. debounce_ms: outside
    the band this long before acting. min_move: outside the band, act only once the price moved
    this fraction since the last trade (drift from IV or time alone waits)."""

    time_fallback_ms: int | None = None
    inner: float = 0.25
    debounce_ms: int | None = None
    min_move: float | None = None

    def __post_init__(self) -> None:
        if not 0 < self.inner < 1:
            raise ValueError(f"inner must be in (0, 1), got {self.inner}")


@dataclass(frozen=True, slots=True)
class Memory:
    """What the modifiers remember between decisions of one underlying (held by the hedger,
    passed into decide and returned updated with its decision)."""

    outside_since_ms: int | None = None  # when the delta last left the band; None: inside
    last_trade_ms: int | None = None  # the last trading decision, or the first decision seen
    last_trade_price: float | None = None  # the price at the last trading decision


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
