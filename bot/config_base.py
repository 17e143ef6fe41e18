"""The base of every config section: unknown keys and non-finite floats are refused."""

from __future__ import annotations

from pydantic import (
    BaseModel,
    ConfigDict,
)


class Section(BaseModel):
    """Every section refuses unknown keys: a typo in a config file is an error, not a no-op.
    No float may be nan or inf: `band = inf` or `qty = nan` would silently stop hedging."""

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)
