"""The outbound MQTT payloads: the retained state document, events, command replies and the
status words; the topics are described in bot/io/mqtt_schema.py.

Outbound models allow extra keys so the engine can add detail without a schema change here.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
)


class _Out(BaseModel):
    model_config = ConfigDict(extra="allow")


class CommandReply(_Out):
    id: str | int
    ok: bool
    cmd: str | None = Field(default=None, description="the command, when it could be read")
    result: Any = Field(default=None, description="present when ok")
    error: str | None = Field(default=None, description="present when not ok")
    ts_ms: int


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
