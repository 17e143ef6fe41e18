"""The bridge's command inbox: every inbound message goes through one pipeline (size check, JSON
parse, pydantic validation, authentication: HMAC + freshness + replay when `command_secret` is
set) and then to the Controller. Every command message that carries a usable id gets exactly one
reply on `cmd/reply`; every rejection is also an event and a warning log line. `positions/in`
messages are validated and handed to the external-position callback."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import aiomqtt
from pydantic import ValidationError

from bot.config_errors import SECRET_FIELDS
from bot.control import CommandError
from bot.events import Event
from bot.io import mqtt_inbox
from bot.io.command_auth import AuthError, verify
from bot.io.mqtt_outbox import Outbox, log
from bot.io.mqtt_schema_in import (
    COMMAND_NAMES,
    Command,
    ExternalPositionIn,
    FlattenCommand,
    HaltCommand,
    HedgeNowCommand,
    PauseCommand,
    PositionsCommand,
    ReloadCommand,
    ResolveOrderCommand,
    ResumeCommand,
    SetCommand,
    SetTradingStateCommand,
    StatusCommand,
    parse_command,
)
from bot.io.mqtt_wire import as_bytes

# Oversized payloads are never executed, but up to this size they are still parsed to find the
# id, so the sender gets its error reply. Beyond it the broker's own limit should have applied.
_ID_SCAN_LIMIT = 1 << 20
_REPLY_ID_MAX = 256
# Commands that change what the state document shows: publish it right after them.
_STATE_CHANGING = frozenset(
    {
        "pause",
        "resume",
        "hedge-now",
        "flatten",
        "set",
        "reload",
        "halt",
        "set-trading-state",
        "resolve-order",
    }
)


def _reply_id(data: Any) -> str | int | None:
    """The id a reply can be addressed to, if the payload has a usable one."""
    if not isinstance(data, dict):
        return None
    v = data.get("id")
    if isinstance(v, bool):
        return None
    if isinstance(v, int):
        return v
    if isinstance(v, str) and 0 < len(v) <= _REPLY_ID_MAX:
        return v
    return None


def describe_validation(e: ValidationError) -> str:
    """At most five pydantic errors as `field.path: message`, for replies and the ctl CLI."""
    parts: list[str] = []
    for err in e.errors()[:5]:
        loc = [str(p) for p in err["loc"]]
        # Discriminated unions put the tag (the cmd name) first; it adds nothing for the reader.
        if loc and loc[0] in COMMAND_NAMES:
            loc = loc[1:]
        where = ".".join(loc)
        # "Value error, " is pydantic's prefix for our own validators' messages: noise.
        msg = str(err["msg"]).removeprefix("Value error, ")
        parts.append(f"{where}: {msg}" if where else msg)
    more = len(e.errors()) - len(parts)
    if more > 0:
        parts.append(f"(+{more} more)")
    return "; ".join(parts)


def _operator_reason(reason: str | None) -> str:
    # "operator" marks a state an operator set, as "kill_file" marks the file's: the kill file
    # only lifts a halt it caused, never one set by command.
    return "operator" if not reason else f"operator: {reason}"


class _Reject(Exception):
    """A command refused before reaching the Controller; the message goes in the reply."""


class CommandInbox(Outbox):
    """Receives `cmd` and `positions/in` messages and executes or refuses them."""

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                payload = as_bytes(message.payload)
                if message.topic.matches(self.topics.cmd):
                    self.handle_command(payload, retained=bool(message.retain))
                elif message.topic.matches(self.topics.positions):
                    self.handle_position(payload, retained=bool(message.retain))
                elif message.topic.matches(self.topics.instance):
                    other = self._twins.other(payload, retained=bool(message.retain))
                    if other is not None:
                        self._emit(Event("alert", "mqtt.bot_id_in_use", self._now_ms(), other))
                        marker = self._twins.marker()
                        await client.publish(self.topics.instance, marker, qos=1, retain=True)
            except Exception as e:  # one bad message must never end the loop
                log.error("mqtt.message_failed", topic=str(message.topic), error=repr(e))
            if self._inbox.dropped > self._inbox.reported:
                self._report_inbox_drops()

    def _report_inbox_drops(self) -> None:
        # One line per burst, not per message: the drops are what a flood looks like.
        dropped = self._inbox.dropped - self._inbox.reported
        self._inbox.reported = self._inbox.dropped
        log.warning(
            "mqtt.incoming_dropped",
            dropped=dropped,
            dropped_total=self._inbox.dropped,
            max_messages=mqtt_inbox.MAX_MESSAGES,
            max_bytes=mqtt_inbox.MAX_BYTES,
        )

    def _reject(self, cmd_id: str | int | None, cmd: str | None, reason: str) -> None:
        self.commands_rejected += 1
        log.warning("mqtt.command_rejected", id=cmd_id, cmd=cmd, reason=reason)
        if cmd_id is not None:
            self._queue_reply(cmd_id, cmd, False, error=reason)
        self._emit(
            Event(
                "reject",
                "command.rejected",
                self._now_ms(),
                {"id": cmd_id, "cmd": cmd, "reason": reason},
            )
        )

    def _emit(self, event: Event) -> None:
        try:
            self._sink.emit(event)
        except Exception as e:
            log.error("mqtt.emit_failed", error=repr(e))

    def handle_command(self, payload: bytes, *, retained: bool = False) -> None:
        """Validate, authenticate and execute one `cmd` message. Never raises."""
        now = self._now_ms()
        data: Any = None
        cmd_name: str | None = None
        try:
            if len(payload) > self._cfg.max_payload_bytes:
                if len(payload) <= _ID_SCAN_LIMIT:
                    with contextlib.suppress(Exception):
                        data = json.loads(payload)
                raise _Reject(
                    f"payload too large: {len(payload)} bytes > {self._cfg.max_payload_bytes}"
                )
            try:
                data = json.loads(payload)
            except (ValueError, RecursionError) as e:
                raise _Reject(f"invalid JSON: {e}") from None
            if not isinstance(data, dict):
                raise _Reject("a command must be a JSON object")
            raw_cmd = data.get("cmd")
            cmd_name = raw_cmd if isinstance(raw_cmd, str) and len(raw_cmd) <= 32 else None
            if retained:
                # A retained command would run again on every reconnect of every bot.
                raise _Reject("retained commands are refused; publish with retain=false")
            try:
                command = parse_command(data)
            except ValidationError as e:
                raise _Reject(f"invalid command: {describe_validation(e)}") from None
            if self._secret is not None:
                try:
                    verify(data, self._secret, now, self._cfg.command_max_age_s)
                    assert command.sig is not None and command.ts is not None  # verify checked
                    self._seen.check_and_add(command.id, command.sig, command.ts, now)
                except AuthError as e:
                    raise _Reject(f"unauthorized: {e}") from None
            else:
                try:
                    self._seen.check_and_add(command.id, "", now, now)
                except AuthError as e:
                    raise _Reject(f"duplicate: {e}") from None
            if isinstance(command, SetCommand):
                parts = command.args.path.lower().split(".")
                if any(p in SECRET_FIELDS for p in parts):
                    raise _Reject("secrets cannot be set over MQTT")
        except _Reject as e:
            self._reject(_reply_id(data), cmd_name, str(e))
            return
        self._dispatch(command)

    def _dispatch(self, command: Command) -> None:
        c = self._controller
        if isinstance(command, FlattenCommand):
            # flatten trades and can take a while: run it beside the message loop, reply after.
            task = asyncio.get_running_loop().create_task(self._run_flatten(command))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
            return
        try:
            result: Any
            if isinstance(command, PauseCommand):
                result = c.pause()
            elif isinstance(command, ResumeCommand):
                result = c.resume()
            elif isinstance(command, HedgeNowCommand):
                result = c.hedge_now(command.args.underlying)
            elif isinstance(command, SetCommand):
                result = c.set_setting(command.args.path, command.args.value)
            elif isinstance(command, ReloadCommand):
                result = c.reload()
            elif isinstance(command, StatusCommand):
                result = self._state_doc()
            elif isinstance(command, PositionsCommand):
                result = c.positions()
            elif isinstance(command, HaltCommand):
                result = c.set_trading_state("halted", _operator_reason(command.args.reason))
            elif isinstance(command, SetTradingStateCommand):
                result = c.set_trading_state(
                    command.args.state, _operator_reason(command.args.reason)
                )
            elif isinstance(command, ResolveOrderCommand):
                a = command.args
                result = c.resolve_order(a.client_id, a.status, a.confirm)
            else:  # pragma: no cover - the union is exhaustive
                raise CommandError(f"unknown command {command.cmd!r}")
        except Exception as e:
            self._finish(command, error=e)
            return
        self._finish(command, result=result)

    async def _run_flatten(self, command: FlattenCommand) -> None:
        try:
            result = await self._controller.flatten(command.args.underlying)
        except Exception as e:
            self._finish(command, error=e)
            return
        self._finish(command, result=result)

    def _finish(self, command: Command, result: Any = None, error: Exception | None = None) -> None:
        if error is None:
            self._queue_reply(command.id, command.cmd, True, result=result)
            log.info("mqtt.command_done", id=command.id, cmd=command.cmd)
            self._emit(
                Event(
                    "command",
                    "command.done",
                    self._now_ms(),
                    {"id": command.id, "cmd": command.cmd, "ok": True},
                )
            )
        else:
            if isinstance(error, CommandError):
                reason = str(error)
            else:
                reason = f"internal error: {type(error).__name__}: {error}"
                log.error("mqtt.command_crashed", id=command.id, cmd=command.cmd, error=repr(error))
            self.commands_rejected += 1
            self._queue_reply(command.id, command.cmd, False, error=reason)
            log.warning("mqtt.command_failed", id=command.id, cmd=command.cmd, reason=reason)
            self._emit(
                Event(
                    "reject",
                    "command.failed",
                    self._now_ms(),
                    {"id": command.id, "cmd": command.cmd, "reason": reason},
                )
            )
        if command.cmd in _STATE_CHANGING:
            self.request_state()

    def handle_position(self, payload: bytes, *, retained: bool = False) -> None:
        """Validate one `positions/in` message and hand it to the callback. Never raises."""
        now = self._now_ms()
        reason: str | None = None
        pos: ExternalPositionIn | None = None
        if len(payload) > self._cfg.max_payload_bytes:
            reason = f"payload too large: {len(payload)} bytes > {self._cfg.max_payload_bytes}"
        else:
            try:
                pos = ExternalPositionIn.model_validate_json(payload)
            except ValidationError as e:
                reason = f"invalid position: {describe_validation(e)}"
        if pos is not None:
            if pos.ttl_s is not None:
                if retained:
                    # ttl counts from receipt, so a retained copy would never expire.
                    reason = "a retained position needs expires_at_ms, not ttl_s"
                else:
                    pos = pos.model_copy(update={"expires_at_ms": now + int(pos.ttl_s * 1000)})
            if reason is None and pos.expires_at_ms is not None and pos.expires_at_ms <= now:
                reason = "position already expired"
        if reason is not None or pos is None:
            log.warning("mqtt.position_rejected", reason=reason)
            self._emit(Event("reject", "position.rejected", now, {"reason": reason}))
            return
        log.info(
            "mqtt.position_received",
            source=pos.source,
            symbol=pos.symbol,
            qty=pos.qty,
            expires_at_ms=pos.expires_at_ms,
        )
        if self._on_position is None:
            return
        try:
            self._on_position(pos)
        except CommandError as e:  # understood but refused (unknown underlying or symbol)
            log.warning(
                "mqtt.position_rejected", source=pos.source, symbol=pos.symbol, reason=str(e)
            )
            self._emit(
                Event(
                    "reject",
                    "position.rejected",
                    now,
                    {"source": pos.source, "symbol": pos.symbol, "reason": str(e)},
                )
            )
        except Exception as e:
            log.error("mqtt.position_callback_failed", error=repr(e))
            self._emit(Event("alert", "position.callback_failed", now, {"error": repr(e)}))
