"""Config of cross hedges (`[hedge.<U>.cross]`) and of the simulated market's correlation
(`[sim.correlation]`). Models only; bot/hedger/cross.py and bot/venues/sim/correlation.py use
them. The rules that involve several sections (a proxy must be hedged itself, no chains) are
`cross_problems`, checked by Settings."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from bot.config_base import Section

OnBreakdown = Literal["halt", "direct", "keep"]


class CrossConfig(Section):
    """Hedge this underlying's USD delta with its proxies' hedges, by minimum-variance betas."""

    proxies: list[str] = Field(
        min_length=1, max_length=8, description="underlyings whose hedges carry this delta"
    )
    sample_s: float = Field(default=60.0, gt=0, description="seconds between price samples")
    window: int | None = Field(
        default=None, ge=2, le=100_000, description="returns in the estimate (equal weights)"
    )
    half_life: float | None = Field(
        default=None, gt=0, le=100_000, description="EWMA half-life, in samples (instead of window)"
    )
    min_samples: int = Field(
        default=60, ge=2, description="returns needed before a beta sizes any order"
    )
    corr_floor: float = Field(
        default=0.5, ge=0, le=1, description="correlation below this is a breakdown (alert)"
    )
    on_breakdown: OnBreakdown = Field(
        default="halt",
        description="halt: freeze this underlying's share of the proxies' hedges; direct: "
        "hedge with its own instrument; keep: go on with the last good beta",
    )

    @field_validator("proxies")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        out = [p.upper() for p in v]
        if len(set(out)) != len(out):
            raise ValueError(f"proxies {out} name an underlying twice")
        return out

    @model_validator(mode="after")
    def _weights(self) -> CrossConfig:
        if self.window is not None and self.half_life is not None:
            raise ValueError("give window or half_life, not both")
        if self.window is not None and self.min_samples > self.window:
            raise ValueError(
                f"min_samples = {self.min_samples} must be <= window = {self.window} "
                "(the window never holds more)"
            )
        if self.min_samples <= len(self.proxies) + 1:
            raise ValueError(
                f"min_samples = {self.min_samples} must exceed the number of proxies + 1 "
                f"({len(self.proxies) + 1}) for a regression"
            )
        return self

    @property
    def effective_window(self) -> int | None:
        """The window, defaulting to 1440 samples when neither window nor half_life is set."""
        if self.window is None and self.half_life is None:
            return 1440
        return self.window


def cross_problems(hedge: Mapping[str, Any]) -> list[str]:
    """Rules across hedge entries, as 'field: value: rule' sentences (Settings raises them)."""
    crossed = {u for u, h in hedge.items() if h.cross is not None}
    out = []
    for u in sorted(crossed):
        for p in hedge[u].cross.proxies:
            where = f"hedge.{u}.cross.proxies"
            if p == u:
                out.append(f"{where}: {p!r}: an underlying cannot be its own proxy")
            elif p not in hedge:
                out.append(f"{where}: {p!r}: a proxy needs its own [hedge.{p}] entry to carry it")
            elif p in crossed:
                out.append(f"{where}: {p!r}: is cross-hedged itself; proxies must not chain")
    return out


class SimCorrelation(Section):
    """Correlated normals of the simulated underlyings (a Cholesky factor on each step's draws)
    and an optional breakdown regime. Underlyings not named move independently."""

    underlyings: list[str] = Field(min_length=2, description="names, in the matrix's order")
    matrix: list[list[float]] = Field(description="correlation matrix, unit diagonal")
    break_after_days: float | None = Field(
        default=None, ge=0, description="breakdown at this time after the sim's start"
    )
    break_rate: float = Field(
        default=0.0, ge=0, description="or: breakdowns per year (random, seeded)"
    )
    recover_rate: float = Field(default=0.0, ge=0, description="random breakdowns end, 1/year")
    break_rho: float = Field(
        default=0.0, ge=-1, le=1, description="every off-diagonal correlation during a breakdown"
    )

    @field_validator("underlyings")
    @classmethod
    def _upper(cls, v: list[str]) -> list[str]:
        out = [u.upper() for u in v]
        if len(set(out)) != len(out):
            raise ValueError(f"underlyings {out} name one twice")
        return out

    @model_validator(mode="after")
    def _valid_matrix(self) -> SimCorrelation:
        n = len(self.underlyings)
        m = np.asarray(self.matrix, dtype=float) if self.matrix else np.zeros((0, 0))
        if m.shape != (n, n):
            raise ValueError(f"matrix must be {n} x {n} (one row per underlying), got {m.shape}")
        if not np.allclose(np.diag(m), 1.0) or not np.allclose(m, m.T):
            raise ValueError("matrix must be symmetric with a unit diagonal")
        if np.abs(m).max() > 1.0:
            raise ValueError("matrix entries must lie in [-1, 1]")
        if not _positive_definite(m):
            raise ValueError("matrix must be positive definite (a valid correlation matrix)")
        broken = breakdown_matrix(n, self.break_rho)
        if (self.break_after_days is not None or self.break_rate > 0) and not _positive_definite(
            broken
        ):
            raise ValueError(
                f"break_rho = {self.break_rho} gives no valid correlation matrix for "
                f"{n} underlyings (needs > {-1.0 / (n - 1):.4g})"
            )
        return self


def breakdown_matrix(n: int, rho: float) -> np.ndarray[Any, np.dtype[np.float64]]:
    return np.full((n, n), rho) + (1.0 - rho) * np.eye(n)


def _positive_definite(m: np.ndarray[Any, np.dtype[np.float64]]) -> bool:
    try:
        np.linalg.cholesky(m)
    except np.linalg.LinAlgError:
        return False
    return True
