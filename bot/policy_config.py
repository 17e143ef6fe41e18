"""Config of the trigger policies: `[hedge.<U>.policy]`, a union discriminated by `kind`.

`target`, `bias`, `unit` and `hedge_ratio` stay at `[hedge.<U>]`: every policy takes them.
Adding a policy: its model here (with `build`), one member of `PolicyConfig`, one module in
bot/core/policy/.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Annotated, Any, Literal, Union, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    ValidatorFunctionWrapHandler,
    WrapValidator,
    field_validator,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError

from bot.core.policy import (
    Aim,
    BandPolicy,
    Modifiers,
    TriggerPolicy,
    WhalleyWilmott,
    Zakamouline,
)

if TYPE_CHECKING:
    from bot.config_hedge import HedgeConfig

HalfWidth = Annotated[float, Field(gt=0, allow_inf_nan=False)]
Positive = Annotated[float, Field(gt=0, allow_inf_nan=False)]
BandUnitField = Literal["coin", "usd", "pct_gross"]
_BAND_UNIT = "unit of the widths: coin, usd or pct_gross (percent of gross notional); or unit"


class _PolicySection(BaseModel):
    """What every policy takes: the modifiers and the realized-vol half-life."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    time_fallback_s: Positive | None = Field(
        default=None,
        description="inside the band but beyond its inner part: trade to target this long "
        "after the last trade",
    )
    time_fallback_inner: float = Field(
        default=0.25, gt=0, lt=1, description="the inner band, as a share of the band's side"
    )
    debounce_s: Positive | None = Field(
        default=None, description="act only once the delta stayed outside the band this long"
    )
    min_move_pct: Positive | None = Field(
        default=None,
        description="outside the band, act only once the price moved this percent since the "
        "last trade",
    )
    vol_half_life_s: Positive = Field(
        default=3600.0, description="half-life of the EWMA of realized returns (vol w/o options)"
    )

    def modifiers(self) -> Modifiers:
        def ms(s: float | None) -> int | None:
            return None if s is None else round(s * 1000)

        return Modifiers(
            time_fallback_ms=ms(self.time_fallback_s),
            inner=self.time_fallback_inner,
            debounce_ms=ms(self.debounce_s),
            min_move=None if self.min_move_pct is None else self.min_move_pct / 100.0,
        )


class BandPolicyConfig(_PolicySection):
    """A fixed band: no trade while target + bias - band_lower <= delta <= target + bias +
    band_upper (in `unit`); both sides default to `band`."""

    kind: Literal["band"]
    band: HalfWidth | None = Field(
        default=None, description="half-width of the no-trade band around target + bias, in unit"
    )
    band_lower: HalfWidth | None = Field(default=None, description="half-width below; or band")
    band_upper: HalfWidth | None = Field(default=None, description="half-width above; or band")
    to: Literal["target", "edge"] = Field(
        default="target", description="a trade goes back to the target, or to the nearest edge"
    )
    band_unit: BandUnitField | None = Field(default=None, description=_BAND_UNIT)

    @model_validator(mode="after")
    def _both_sides(self) -> BandPolicyConfig:
        if self.band is None and (self.band_lower is None or self.band_upper is None):
            raise ValueError("give band, or both band_lower and band_upper")
        return self

    def build(self, aim: Aim) -> TriggerPolicy:
        lower = self.band_lower if self.band_lower is not None else self.band
        upper = self.band_upper if self.band_upper is not None else self.band
        assert lower is not None and upper is not None  # _both_sides
        return BandPolicy(
            band=self.band if self.band is not None else max(lower, upper),
            aim=aim,
            to=self.to,
            lower=lower,
            upper=upper,
            band_unit=self.band_unit,
        )


class _CostBandConfig(_PolicySection):
    """A band from gamma and the hedge's cost (bot/core/policy/cost.py), held in [floor, cap]."""

    risk_aversion: Positive = Field(description="absolute risk aversion, per USD of wealth")
    band_floor: Positive = Field(description="narrowest half-width, in band_unit")
    band_cap: Positive = Field(description="widest half-width, in band_unit")
    band_unit: BandUnitField | None = Field(default=None, description=_BAND_UNIT)
    to: Literal["target", "edge"] = Field(
        default="edge", description="a trade goes to the nearest edge (optimal), or the target"
    )

    @field_validator("band_cap")
    @classmethod
    def _cap_above_floor(cls, cap: float, info: ValidationInfo) -> float:
        floor = info.data.get("band_floor")
        if floor is not None and cap < floor:
            raise ValueError(f"must be >= band_floor ({floor})")
        return cap


class WhalleyWilmottConfig(_CostBandConfig):
    kind: Literal["whalley_wilmott"]

    def build(self, aim: Aim) -> TriggerPolicy:
        return WhalleyWilmott(
            self.risk_aversion, self.band_floor, self.band_cap, self.band_unit, aim, self.to
        )


class ZakamoulineConfig(_CostBandConfig):
    kind: Literal["zakamouline"]

    def build(self, aim: Aim) -> TriggerPolicy:
        return Zakamouline(
            self.risk_aversion, self.band_floor, self.band_cap, self.band_unit, aim, self.to
        )


_POLICIES = (BandPolicyConfig, WhalleyWilmottConfig, ZakamoulineConfig)
_KINDS = ", ".join(repr(k) for m in _POLICIES for k in get_args(m.model_fields["kind"].annotation))


Rewrite = tuple[tuple[Any, ...], str, str, Any]  # location, error type, message, bad value


def _reraise(e: ValidationError, rewrite: Callable[[Any], Rewrite]) -> ValidationError:
    """`e` with each error passed through `rewrite`."""
    details: list[InitErrorDetails] = []
    for err in e.errors():
        loc, kind, msg, bad = rewrite(err)
        details.append({"type": PydanticCustomError(kind, msg), "loc": loc, "input": bad})
    return ValidationError.from_exception_data(e.title, details)


def _untagged(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """Errors inside a policy read `policy.band`, not pydantic's `policy.band.band` (the kind
    is in the location of a discriminated union's errors)."""
    try:
        return handler(value)
    except ValidationError as e:

        def rewrite(err: Any) -> Rewrite:
            if err["type"] == "union_tag_not_found":
                rule = f"the policy kind is required: one of {_KINDS}"
                return ("kind",), "missing", rule, err["input"]
            if err["type"] == "union_tag_invalid":
                kind = value.get("kind") if isinstance(value, dict) else None
                return ("kind",), "literal_error", f"unknown policy kind: one of {_KINDS}", kind
            return tuple(err["loc"][1:]), err["type"], err["msg"], err["input"]

        raise _reraise(e, rewrite) from None


PolicyConfig = Annotated[
    Union[BandPolicyConfig, WhalleyWilmottConfig, ZakamoulineConfig],  # noqa: UP007
    Field(discriminator="kind"),
    WrapValidator(_untagged),
]

# Keys of [hedge.<U>] that moved into [hedge.<U>.policy], with the example the error shows.
_MOVED = {"band": 'kind = "band", band = {value}', "to": "to = {value}"}


def explain_moved_keys(value: Any, handler: ValidatorFunctionWrapHandler) -> Any:
    """For the `hedge` table: an old `hedge.<U>.band` (or `to`) is an error that says where it
    went, instead of pydantic's "unknown setting"."""
    try:
        return handler(value)
    except ValidationError as e:

        def rewrite(err: Any) -> Rewrite:
            loc, bad = tuple(err["loc"]), err["input"]
            if err["type"] == "extra_forbidden" and len(loc) == 2 and loc[1] in _MOVED:
                example = _MOVED[str(loc[1])].format(value=_toml(bad))
                return loc, "moved_setting", f"moved to [hedge.{loc[0]}.policy]: {example}", bad
            return loc, err["type"], err["msg"], bad

        raise _reraise(e, rewrite) from None


def moved_hint(path: str, value: Any) -> str | None:
    """The "moved" rule for a dotted path that names a moved key (`set hedge.BTC.band`)."""
    parts = path.split(".")
    if len(parts) == 3 and parts[0] == "hedge" and parts[2] in _MOVED:
        example = _MOVED[parts[2]].format(value=_toml(value))
        u, key = parts[1], parts[2]
        return f"moved to [hedge.{u}.policy]: {example} (set hedge.{u}.policy.{key})"
    return None


def _toml(value: Any) -> str:
    return f'"{value}"' if isinstance(value, str) else repr(value)


def policy_for(hedge: HedgeConfig) -> TriggerPolicy:
    """The trigger policy one [hedge.<U>] section configures."""
    return hedge.policy.build(Aim(unit=hedge.unit, target=hedge.target, bias=hedge.bias))


def modifiers_for(hedge: HedgeConfig) -> Modifiers:
    """The modifiers one [hedge.<U>.policy] section configures."""
    return hedge.policy.modifiers()
