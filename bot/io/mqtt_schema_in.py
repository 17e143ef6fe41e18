"""The inbound MQTT payloads: operator commands (`<prefix>/<bot_id>/cmd`) and external
positions (`<prefix>/<bot_id>/positions/in`); the topics and commands are described in
bot/io/mqtt_schema.py.

Inbound models forbid unknown keys: a typo in a command is an error, never a silently ignored
field.
"""

from __future__ import annotations

import json
import math
from typing import Annotated, Any, Literal, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    TypeAdapter,
    field_validator,
    model_validator,
)

CommandName = Literal[
    "pause",
    "resume",
    "hedge-now",
    "flatten",
    "set",
    "reload",
    "status",
    "halt",
    "set-trading-state",
    "resolve-order",
    "positions",
]
COMMAND_NAMES: tuple[str, ...] = get_args(CommandName)

# Ids are echoed in replies and logged: keep them short and printable.
CommandId = Annotated[str, Field(min_length=1, max_length=128, pattern=r"^[\x21-\x7e]+$")]
Underlying = Annotated[str, Field(min_length=1, max_length=32, pattern=r"^[A-Z0-9]+$")]
HexSig = Annotated[str, Field(pattern=r"^[0-9a-fA-F]{64}$")]


class _In(BaseModel):
    # nan and inf are refused in every inbound number: they would silently stop hedging.
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


# --- commands -----------------------------------------------------------------------------------


class NoArgs(_In):
    pass


class HedgeNowArgs(_In):
    underlying: Underlying | None = Field(default=None, description="one underlying; None: all")


_CONFIRM_RULE = 'flatten trades: args.confirm must be JSON true or the string "FLATTEN"'


class FlattenArgs(_In):
    underlying: Underlying | None = Field(default=None, description="one underlying; None: all")
    confirm: Literal[True, "FLATTEN"] = Field(
        description='must be JSON true or the string "FLATTEN"'
    )

    @model_validator(mode="before")
    @classmethod
    def _confirm_given(cls, data: Any) -> Any:
        # Pydantic's "Field required" does not tell an operator what to type.
        if isinstance(data, dict) and "confirm" not in data:
            raise ValueError(_CONFIRM_RULE + ", and it is missing")
        return data

    @field_validator("confirm", mode="before")
    @classmethod
    def _exactly_true_or_flatten(cls, v: Any) -> Any:
        # Pydantic's Literal[True] also takes 1 and 1.0; flattening a book is too costly to
        # trigger on anything but the exact values an operator has to type on purpose.
        if v is True or v == "FLATTEN":
            return v
        try:
            got = json.dumps(v)
        except (TypeError, ValueError):
            got = repr(v)
        raise ValueError(f"{_CONFIRM_RULE}, got {got}")


class SetArgs(_In):
    path: str = Field(
        min_length=1,
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+(\.[A-Za-z0-9_-]+)*$",
        description="dotted settings path, e.g. hedge.BTC.policy.band",
    )
    value: Any = Field(description="new value, validated exactly like the config file")


# Printable and short: it ends up in the risk state, the journal and every halted decision.
Reason = Annotated[str, Field(min_length=1, max_length=200, pattern=r"^[\x20-\x7e]+$")]


class HaltArgs(_In):
    reason: Reason | None = Field(default=None, description="why, recorded with the halt")


class SetTradingStateArgs(_In):
    state: Literal["active", "reducing_only", "halted"]
    reason: Reason | None = Field(default=None, description="why, recorded with the change")


class ResolveOrderArgs(_In):
    client_id: str = Field(
        min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_-]+$", description="a stuck order"
    )
    status: Literal["filled", "cancelled", "rejected"] = Field(
        description="what the order ended as, checked at the venue by the operator"
    )
    confirm: Literal[True] = Field(description="must be JSON true")

    @field_validator("confirm", mode="before")
    @classmethod
    def _exactly_true(cls, v: Any) -> Any:
        # Literal[True] alone also takes 1 and 1.0: the operator must type true on purpose.
        if v is True:
            return v
        raise ValueError("confirm must be true")


class _CommandBase(_In):
    id: CommandId
    ts: int | None = Field(
        default=None, ge=0, description="epoch ms when sent; required when a secret is set"
    )
    sig: HexSig | None = Field(
        default=None,
        description="hex HMAC-SHA256 of the canonical JSON of the command without sig",
    )


class PauseCommand(_CommandBase):
    cmd: Literal["pause"]
    args: NoArgs = NoArgs()


class ResumeCommand(_CommandBase):
    cmd: Literal["resume"]
    args: NoArgs = NoArgs()


class HedgeNowCommand(_CommandBase):
    cmd: Literal["hedge-now"]
    args: HedgeNowArgs = HedgeNowArgs()


class FlattenCommand(_CommandBase):
    cmd: Literal["flatten"]
    args: FlattenArgs

    @model_validator(mode="before")
    @classmethod
    def _args_present(cls, data: Any) -> Any:
        # Without args the error names confirm (what is missing), not just "args".
        if isinstance(data, dict) and "args" not in data:
            return {**data, "args": {}}
        return data


class SetCommand(_CommandBase):
    cmd: Literal["set"]
    args: SetArgs


class ReloadCommand(_CommandBase):
    cmd: Literal["reload"]
    args: NoArgs = NoArgs()


class StatusCommand(_CommandBase):
    cmd: Literal["status"]
    args: NoArgs = NoArgs()


class PositionsCommand(_CommandBase):
    """The hedge positions the bot's ledger holds and the live external positions."""

    cmd: Literal["positions"]
    args: NoArgs = NoArgs()


class HaltCommand(_CommandBase):
    """The kill switch: trading state `halted` until set-trading-state says otherwise."""

    cmd: Literal["halt"]
    args: HaltArgs = HaltArgs()


class SetTradingStateCommand(_CommandBase):
    cmd: Literal["set-trading-state"]
    args: SetTradingStateArgs


class ResolveOrderCommand(_CommandBase):
    """Settle a stuck order by the operator's word (see stuck_orders in the state)."""

    cmd: Literal["resolve-order"]
    args: ResolveOrderArgs


Command = Annotated[
    PauseCommand
    | ResumeCommand
    | HedgeNowCommand
    | FlattenCommand
    | SetCommand
    | ReloadCommand
    | StatusCommand
    | HaltCommand
    | SetTradingStateCommand
    | ResolveOrderCommand
    | PositionsCommand,
    Field(discriminator="cmd"),
]
COMMAND_ADAPTER: TypeAdapter[Command] = TypeAdapter(Command)


def parse_command(data: Any) -> Command:
    """Validate a decoded JSON value as a command; raises pydantic.ValidationError."""
    return COMMAND_ADAPTER.validate_python(data)


# --- external positions -------------------------------------------------------------------------


class ExternalPositionIn(_In):
    """A position held outside the bot's venues (OTC, another exchange), counted in the book
    until it expires. A newer message for the same (source, symbol) replaces the older one;
    qty 0 removes it."""

    source: str = Field(min_length=1, max_length=64, description="who holds it, e.g. otc-desk")
    symbol: str = Field(min_length=1, max_length=128)
    underlying: Underlying
    qty: float = Field(description="signed quantity in the instrument's units")
    delta_coin: float | None = Field(
        default=None, description="signed delta in coin; None: computed from the instrument"
    )
    expires_at_ms: int | None = Field(default=None, gt=0)
    ttl_s: float | None = Field(default=None, gt=0, le=366 * 86_400)

    @field_validator("qty", "delta_coin")
    @classmethod
    def _finite(cls, v: float | None) -> float | None:
        if v is not None and not math.isfinite(v):
            raise ValueError("must be a finite number")
        return v

    @model_validator(mode="after")
    def _one_expiry(self) -> ExternalPositionIn:
        if (self.expires_at_ms is None) == (self.ttl_s is None):
            raise ValueError("give exactly one of expires_at_ms and ttl_s")
        return self
