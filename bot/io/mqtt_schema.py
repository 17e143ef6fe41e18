"""Pydantic models for every MQTT payload, in and out.

Topics (prefix `hedgebot` by default, one subtree per bot):

    <prefix>/<bot_id>/status         retained "online" / "offline" (plain text; last will)
    <prefix>/<bot_id>/state          retained StateMessage
    <prefix>/<bot_id>/events         EventMessage, one per message
    <prefix>/<bot_id>/cmd            CommandIn (from the operator)
    <prefix>/<bot_id>/cmd/reply      CommandReply, exactly one per command that has an id
    <prefix>/<bot_id>/positions/in   ExternalPositionIn

Commands (`{"id": ..., "cmd": ..., "args": {...}}`, plus `ts` and `sig` when a command secret is
set): pause, resume, hedge-now {underlying?}, flatten {underlying?, confirm}, set {path, value},
reload, status, positions, halt {reason?}, set-trading-state {state, reason?} and resolve-order
{client_id, status, confirm} (settles a stuck order: filled | cancelled | rejected). `pause`
stops deciding until `resume`; `halt` is the kill switch (trading state `halted`: the risk gate
refuses every order) and stays until `set-trading-state` with state `active` (or
`reducing_only`, which lets only orders that shrink a position through). The halt reason
recorded is "operator" (or "operator: <reason>").

Inbound models forbid unknown keys: a typo in a command is an error, never a silently ignored
field. Outbound models allow extra keys so the engine can add detail without a schema change here.
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


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


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


class CommandReply(_Out):
    id: str | int
    ok: bool
    cmd: str | None = Field(default=None, description="the command, when it could be read")
    result: Any = Field(default=None, description="present when ok")
    error: str | None = Field(default=None, description="present when not ok")
    ts_ms: int


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


# --- outbound telemetry -------------------------------------------------------------------------


class UnderlyingState(_Out):
    delta_coin: float | None = Field(default=None, description="net delta in coin, in flight in")
    delta_usd: float | None = None
    gamma_coin: float | None = Field(default=None, description="d(delta_coin)/dS, coin per USD")
    vega_usd: float | None = Field(default=None, description="USD per 1.00 of implied vol")
    theta_usd: float | None = Field(default=None, description="USD per year of time decay")
    in_flight_coin: float | None = Field(default=None, description="delta of unsettled orders")
    price: float | None = Field(default=None, description="index (or mid) the delta is priced at")
    target: float | None = Field(
        default=None, description="centre of the band in use (target + bias), in `unit`"
    )
    band: float | None = Field(
        default=None,
        description="half-width of the band of the latest decision, in `unit` (the wider side "
        "if asymmetric); null before the first decision",
    )
    band_lower: float | None = Field(default=None, description="half-width below the target")
    band_upper: float | None = Field(default=None, description="half-width above the target")
    to: Literal["target", "edge"] | None = Field(
        default=None, description="where a trade goes: the target or the nearest band edge"
    )
    policy: str | None = Field(default=None, description="trigger policy (config policy.kind)")
    unit: Literal["coin", "usd"] | None = None
    hedge_instrument: str | None = None
    routing: list[dict[str, Any]] = Field(
        default_factory=list,
        description="routing candidates: account, symbol, position, position_coin, limit_coin, "
        "funding_rate, funding (fresh|stale|n/a), basis_bps, basis_annual",
    )
    halted: str | None = Field(default=None, description="why it does not trade now, if so")
    last_decision: str | None = None
    cross: dict[str, Any] | None = Field(
        default=None,
        description="cross hedge: a cross-hedged underlying's beta, beta_used, corr, "
        "residual_std, samples, status and mapped_coin; a proxy's carries_coin (README)",
    )


class FeedState(_Out):
    ok: bool
    age_ms: int | None = None
    error: str | None = None


class AccountState(_Out):
    exchange: str | None = None
    mode: str | None = None


class OpenOrder(_Out):
    client_id: str
    symbol: str
    side: Literal["buy", "sell"]
    amount: float
    status: str
    filled: float = 0.0


class MqttTelemetry(_Out):
    connected: bool
    reconnects: int
    events_dropped: int
    events_queued: int
    commands_rejected: int


class StateMessage(_Out):
    """The retained state document. The engine's Controller.state() provides everything but
    bot_id, ts_ms and mqtt, which the bridge adds."""

    bot_id: str
    ts_ms: int
    mode: str | None = Field(default=None, description="paper | testnet | live | mixed")
    trading_state: str | None = Field(
        default=None,
        description="active | reducing_only | halted (risk gate), or paused (by command)",
    )
    trading_state_reason: str | None = None
    paused: bool | None = None
    breaker_open: bool | None = None
    accounts: dict[str, AccountState] = Field(default_factory=dict)
    underlyings: dict[str, UnderlyingState] = Field(default_factory=dict)
    feeds: dict[str, FeedState] = Field(default_factory=dict)
    external_positions: int | None = Field(default=None, description="live external positions")
    open_orders: int | list[OpenOrder] | None = None
    stuck_orders: list[dict[str, Any]] | None = Field(
        default=None, description="orders with no final state from the venue (see resolve-order)"
    )
    mqtt: MqttTelemetry | None = None


class EventMessage(_Out):
    """One Event (bot.events.Event.as_dict()) plus the bot id; data keys are flattened in."""

    bot_id: str
    kind: Literal["decision", "order", "fill", "reject", "alert", "state", "command"]
    event: str
    ts_ms: int


STATUS_ONLINE = "online"
STATUS_OFFLINE = "offline"


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every payload, keyed by topic suffix, for the README."""
    return {
        "cmd": COMMAND_ADAPTER.json_schema(),
        "cmd/reply": CommandReply.model_json_schema(),
        "positions/in": ExternalPositionIn.model_json_schema(),
        "state": StateMessage.model_json_schema(),
        "events": EventMessage.model_json_schema(),
        "status": {"type": "string", "enum": [STATUS_ONLINE, STATUS_OFFLINE]},
    }


if __name__ == "__main__":  # `python -m bot.io.mqtt_schema` prints them for the README
    print(json.dumps(json_schemas(), indent=2))
