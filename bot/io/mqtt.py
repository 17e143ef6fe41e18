"""The MQTT bridge: telemetry out (status, state, events, replies) and commands in.

The broker is never on the money path. Everything the engine hands the bridge (`emit`,
`request_state`) is synchronous, never blocks and never raises; the network side runs in its own
task (`run`) that connects, reconnects with backoff and drains bounded buffers. When the broker is
down the engine does not notice, apart from the drop counter in the state document.

Inbound messages go through one pipeline: size check, JSON parse, pydantic validation,
authentication (HMAC + freshness + replay when `command_secret` is set), then the Controller.
Every command message that carries a usable id (a string of 1..256 characters or an integer) gets
exactly one reply on `cmd/reply`; every rejection is also an event and a warning log line.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
import random
import secrets
import ssl
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiomqtt
import structlog
from pydantic import ValidationError

from bot.clock import monotonic_s, wall_ms
from bot.config import SECRET_FIELDS, MqttConfig, Settings
from bot.control import CommandError, Controller
from bot.events import Event, EventSink
from bot.io import mqtt_inbox
from bot.io.command_auth import AuthError, ReplayCache, verify
from bot.io.mqtt_schema import (
    COMMAND_NAMES,
    STATUS_OFFLINE,
    STATUS_ONLINE,
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

log = structlog.get_logger("hedgebot.mqtt")

# Oversized payloads are never executed, but up to this size they are still parsed to find the
# id, so the sender gets its error reply. Beyond it the broker's own limit should have applied.
_ID_SCAN_LIMIT = 1 << 20
_REPLY_ID_MAX = 256
# Replies are small and one per command; the cap only guards memory against a flood (the
# oldest are dropped: under a flood the sender cannot keep up anyway).
_REPLY_QUEUE_MAX = 1_000
_PUBLISH_TIMEOUT_S = 10.0
_OFFLINE_TIMEOUT_S = 2.0
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
# Events that change the state document (trading state, settings, external positions, feeds)
# are followed by a state publish, so an operator sees a halt at once, not at the next interval.
_STATE_EVENT_KINDS = frozenset({"state"})
_STATE_ALERTS = frozenset({"trading.halted", "risk.breaker_open", "stream.error", "order.stuck"})

ExternalPositionCallback = Callable[[ExternalPositionIn], None]


@dataclass(frozen=True, slots=True)
class Topics:
    prefix: str
    bot_id: str

    def _t(self, suffix: str) -> str:
        return f"{self.prefix}/{self.bot_id}/{suffix}"

    @property
    def status(self) -> str:
        return self._t("status")

    @property
    def state(self) -> str:
        return self._t("state")

    @property
    def events(self) -> str:
        return self._t("events")

    @property
    def cmd(self) -> str:
        return self._t("cmd")

    @property
    def reply(self) -> str:
        return self._t("cmd/reply")

    @property
    def positions(self) -> str:
        return self._t("positions/in")


def _finite(obj: Any) -> Any:
    """Replace NaN/Infinity (not JSON) by None, recursively."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {str(k): _finite(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> bytes:
    """Strict, compact JSON; unknown types as str, non-finite floats as null."""
    try:
        text = json.dumps(obj, separators=(",", ":"), allow_nan=False, default=str)
    except ValueError:
        text = json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False, default=str)
    return text.encode("utf-8")


def _as_bytes(payload: Any) -> bytes:
    if isinstance(payload, bytes | bytearray):
        return bytes(payload)
    if payload is None:
        return b""
    return str(payload).encode("utf-8")


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


def tls_params(cfg: MqttConfig) -> aiomqtt.TLSParameters | None:
    """TLS settings for the broker connection; None for plain TCP."""
    if not (cfg.tls or cfg.ca_file is not None):
        return None
    return aiomqtt.TLSParameters(
        ca_certs=str(cfg.ca_file) if cfg.ca_file else None,
        certfile=str(cfg.cert_file) if cfg.cert_file else None,
        keyfile=str(cfg.key_file) if cfg.key_file else None,
        cert_reqs=ssl.CERT_REQUIRED,
    )


def tool_broker(
    settings: Settings, host: str | None, port: int | None, bot_id: str | None
) -> tuple[MqttConfig, str]:
    """The broker and bot id an operator tool talks to: the config's, then --host, --port and
    --bot-id over them."""
    update: dict[str, Any] = {}
    if host is not None:
        update["host"] = host
    if port is not None:
        update["port"] = port
    cfg = settings.mqtt.model_copy(update=update) if update else settings.mqtt
    return cfg, bot_id if bot_id is not None else settings.bot_id


def tool_client(cfg: MqttConfig, role: str) -> aiomqtt.Client:
    """A client for the operator tools (`hedgebot fleet`, `status`, `ctl`): the bot's broker
    settings and credentials, a random client id per run so that two tools never collide."""
    tls = tls_params(cfg)
    return aiomqtt.Client(
        cfg.host,
        cfg.port,
        username=cfg.username,
        password=cfg.password.get_secret_value() if cfg.password else None,
        identifier=f"{cfg.topic_prefix}-{role}-{secrets.token_hex(4)}",
        keepalive=cfg.keepalive,
        timeout=10,
        tls_params=tls,
        tls_insecure=cfg.tls_insecure if tls is not None else None,
    )


class MqttBridge:
    """Publishes the bot's status/state/events and executes validated commands.

    - `controller`: what commands act on (the engine).
    - `on_external_position`: called with each valid `positions/in` message; `expires_at_ms` is
      always set (resolved from `ttl_s` against `now_ms` on receipt).
    - `events`: where the bridge reports rejections and executed commands; pass the engine's
      EventBus so they reach the journal and log too (the bus fans them back to this bridge).
      Defaults to the bridge itself.
    - `now_ms`: wall-clock epoch ms; command freshness is checked against it, so it must be real
      time even when the engine runs on a scaled clock.
    """

    def __init__(
        self,
        config: MqttConfig,
        bot_id: str,
        controller: Controller,
        *,
        on_external_position: ExternalPositionCallback | None = None,
        events: EventSink | None = None,
        now_ms: Callable[[], int] = wall_ms,
    ) -> None:
        self._cfg = config
        self._bot_id = bot_id
        self._controller = controller
        self._on_position = on_external_position
        self._sink: EventSink = events if events is not None else self
        self._now_ms = now_ms
        self.topics = Topics(config.topic_prefix, bot_id)
        self._secret: bytes | None = (
            config.command_secret.get_secret_value().encode("utf-8")
            if config.command_secret is not None
            else None
        )
        # Signed commands are remembered by (id, sig); unsigned ones by id alone, which still
        # stops a QoS 1 redelivery from executing a command twice.
        self._seen = ReplayCache(config.command_max_age_s)

        self._events: deque[bytes] = deque()
        self._replies: deque[bytes] = deque()
        self._wake = asyncio.Event()
        # Set by the sender when nothing is left to publish; close() waits on it to flush.
        self._idle = asyncio.Event()
        self._state_requested = False
        self._stop = asyncio.Event()
        self._done = asyncio.Event()
        self._running = False
        self._connected = False
        self._ever_connected = False
        self._tasks: set[asyncio.Task[None]] = set()
        self._connected_once_this_round = False

        self.reconnects = 0
        self.events_dropped = 0
        self._dropped_reported = 0
        self.commands_rejected = 0
        self.replies_dropped = 0
        self._inbox = mqtt_inbox.InboxStats()

    # --- engine-facing, synchronous, never raise ------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def events_queued(self) -> int:
        return len(self._events)

    def emit(self, event: Event) -> None:
        """EventSink: queue the event for publishing. Never blocks, never raises; when the queue
        is full the oldest event is dropped and counted. Call it from the event loop's thread
        (as the engine's EventBus does); it is not thread-safe."""
        try:
            payload = dumps({"bot_id": self._bot_id, **event.as_dict()})
        except Exception as e:  # a sink must not raise into the engine
            log.error("mqtt.event_unserializable", event_name=event.name, error=repr(e))
            return
        self._enqueue_event(payload)
        if event.kind in _STATE_EVENT_KINDS or event.name in _STATE_ALERTS:
            self.request_state()

    def request_state(self) -> None:
        """Publish the state document as soon as connected (e.g. after a trading state change)."""
        self._state_requested = True
        self._idle.clear()
        self._wake.set()

    def telemetry(self) -> dict[str, Any]:
        return {
            "connected": self._connected,
            "reconnects": self.reconnects,
            "events_dropped": self.events_dropped,
            "events_queued": len(self._events),
            "commands_rejected": self.commands_rejected,
            "incoming_dropped": self._inbox.dropped,
            "replies_dropped": self.replies_dropped,
        }

    def _enqueue_event(self, payload: bytes) -> None:
        while len(self._events) >= self._cfg.event_queue_size:
            self._events.popleft()
            self.events_dropped += 1
        self._events.append(payload)
        self._idle.clear()
        self._wake.set()

    # --- lifecycle ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Connect, serve and reconnect until close(). Run it as a task; it never raises
        (except CancelledError when cancelled)."""
        if self._running:
            raise RuntimeError("MqttBridge.run() is already running")
        self._running = True
        self._done.clear()
        attempt = 0
        try:
            while not self._stop.is_set():
                try:
                    await self._session()
                    attempt = 0
                except aiomqtt.MqttError as e:
                    self._log_connection_error(attempt, e)
                except Exception as e:  # never let telemetry take the daemon down
                    log.error("mqtt.session_crashed", error=repr(e))
                if self._connected_once_this_round:
                    attempt = 0
                if self._stop.is_set():
                    break
                delay = self._backoff(attempt)
                attempt += 1
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._stop.wait(), delay)
        finally:
            self._connected = False
            self._running = False
            self._done.set()

    async def close(self, wait_s: float = 5.0, flush_s: float = 3.0) -> None:
        """Flush what is queued (replies, events, a final state) for up to `flush_s` while
        connected, then publish retained `offline` (a clean disconnect suppresses the last will)
        and stop. With the broker down nothing is waited for: the will already says offline."""
        self.request_state()
        if self._running and self._connected:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._idle.wait(), flush_s)
        self._stop.set()
        if self._running:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._done.wait(), wait_s)

    def _backoff(self, attempt: int) -> float:
        base = min(self._cfg.reconnect_max_s, self._cfg.reconnect_min_s * 2.0 ** min(attempt, 30))
        # Jitter spreads a fleet's reconnects after a broker restart.
        return base * random.uniform(0.5, 1.0)

    def _log_connection_error(self, attempt: int, e: Exception) -> None:
        # One warning per outage, then quiet: a long broker outage must not flood the logs.
        if attempt == 0:
            log.warning("mqtt.disconnected", host=self._cfg.host, port=self._cfg.port, error=str(e))
        else:
            log.debug("mqtt.connect_failed", attempt=attempt, error=str(e))

    def _make_client(self) -> aiomqtt.Client:
        cfg = self._cfg
        tls = tls_params(cfg)
        return aiomqtt.Client(
            cfg.host,
            cfg.port,
            username=cfg.username,
            password=cfg.password.get_secret_value() if cfg.password else None,
            # A random suffix: a restarted bot must not be refused while the broker still holds
            # the old session, and two processes never kick each other off in a loop.
            identifier=f"{cfg.topic_prefix}-{self._bot_id}-{secrets.token_hex(4)}",
            will=aiomqtt.Will(self.topics.status, STATUS_OFFLINE.encode(), qos=1, retain=True),
            keepalive=cfg.keepalive,
            timeout=_PUBLISH_TIMEOUT_S,
            max_queued_incoming_messages=mqtt_inbox.MAX_MESSAGES,
            queue_type=mqtt_inbox.queue_type(self._inbox),
            logger=mqtt_inbox.aiomqtt_logger(),
            tls_params=tls,
            tls_insecure=cfg.tls_insecure if tls is not None else None,
        )

    async def _session(self) -> None:
        self._connected_once_this_round = False
        client = self._make_client()
        async with client:
            self._connected = True
            self._connected_once_this_round = True
            if self._ever_connected:
                self.reconnects += 1
            self._ever_connected = True
            log.info(
                "mqtt.connected", host=self._cfg.host, port=self._cfg.port, bot_id=self._bot_id
            )
            tasks: set[asyncio.Task[None]] = set()
            try:
                await client.publish(self.topics.status, STATUS_ONLINE, qos=1, retain=True)
                await client.subscribe([(self.topics.cmd, 1), (self.topics.positions, 1)])
                recv = asyncio.create_task(self._receiver(client), name="mqtt-recv")
                send = asyncio.create_task(self._sender(client), name="mqtt-send")
                stop = asyncio.create_task(self._wait_stop(), name="mqtt-stop")
                tasks = {recv, send, stop}
                done, _ = await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                if stop in done:
                    await self._say_offline(client)
                    return
                for t in done:
                    t.result()  # re-raise the connection error that ended the session
            except asyncio.CancelledError:
                await self._say_offline(client)
                raise
            finally:
                self._connected = False
                for t in tasks:
                    t.cancel()
                await asyncio.gather(*tasks, return_exceptions=True)

    async def _wait_stop(self) -> None:
        await self._stop.wait()

    async def _say_offline(self, client: aiomqtt.Client) -> None:
        try:
            await client.publish(
                self.topics.status, STATUS_OFFLINE, qos=1, retain=True, timeout=_OFFLINE_TIMEOUT_S
            )
            log.info("mqtt.offline_published", bot_id=self._bot_id)
        except Exception as e:  # the broker may already be gone; the will covers that case
            log.debug("mqtt.offline_failed", error=repr(e))

    # --- outbound ---------------------------------------------------------------------------

    async def _publish(
        self, client: aiomqtt.Client, topic: str, payload: bytes | str, retain: bool = False
    ) -> None:
        # QoS 1: a PUBACK is the only proof the broker has it; an event "published" into a dead
        # socket at QoS 0 would be lost without a trace.
        await client.publish(topic, payload, qos=1, retain=retain, timeout=_PUBLISH_TIMEOUT_S)

    async def _sender(self, client: aiomqtt.Client) -> None:
        next_state = monotonic_s()  # state right after every (re)connect
        while True:
            if self.events_dropped > self._dropped_reported:
                await self._report_drops(client)
            while self._replies:
                reply = self._replies[0]
                await self._publish(client, self.topics.reply, reply)
                if self._replies and self._replies[0] is reply:
                    self._replies.popleft()
            now = monotonic_s()
            if self._state_requested or now >= next_state:
                self._state_requested = False
                await self._publish_state(client)
                next_state = now + self._cfg.state_interval_s
            if self._events:
                payload = self._events.popleft()
                try:
                    await self._publish(client, self.topics.events, payload)
                except BaseException:
                    # Not delivered: put it back in front, where the next session starts.
                    self._events.appendleft(payload)
                    while len(self._events) > self._cfg.event_queue_size:
                        self._events.popleft()
                        self.events_dropped += 1
                    raise
                continue
            self._wake.clear()
            if not self._replies and not self._state_requested:
                self._idle.set()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), max(0.0, next_state - monotonic_s()))

    async def _report_drops(self, client: aiomqtt.Client) -> None:
        total = self.events_dropped
        dropped = total - self._dropped_reported
        alert = {
            "bot_id": self._bot_id,
            "kind": "alert",
            "event": "mqtt.events_dropped",
            "ts_ms": self._now_ms(),
            "dropped": dropped,
            "dropped_total": total,
            "queue_size": self._cfg.event_queue_size,
        }
        # Published directly, not queued: queueing it into a full queue would drop another one.
        await self._publish(client, self.topics.events, dumps(alert))
        self._dropped_reported = total
        log.warning("mqtt.events_dropped", dropped=dropped, dropped_total=total)

    def _state_doc(self) -> dict[str, Any] | None:
        try:
            doc = dict(self._controller.state())
        except Exception as e:
            log.error("mqtt.state_failed", error=repr(e))
            return None
        doc["bot_id"] = self._bot_id
        doc["ts_ms"] = self._now_ms()
        doc["mqtt"] = self.telemetry()
        return doc

    async def _publish_state(self, client: aiomqtt.Client) -> None:
        doc = self._state_doc()
        if doc is None:
            return
        try:
            payload = dumps(doc)
        except Exception as e:  # e.g. a cycle: skip this one rather than end the session
            log.error("mqtt.state_unserializable", error=repr(e))
            return
        await self._publish(client, self.topics.state, payload, retain=True)

    def _queue_reply(
        self,
        cmd_id: str | int,
        cmd: str | None,
        ok: bool,
        result: Any = None,
        error: str | None = None,
    ) -> None:
        body: dict[str, Any] = {"id": cmd_id, "ok": ok, "cmd": cmd, "ts_ms": self._now_ms()}
        if ok:
            body["result"] = result
        else:
            body["error"] = error
        while len(self._replies) >= _REPLY_QUEUE_MAX:
            self._replies.popleft()
            self.replies_dropped += 1
        try:
            payload = dumps(body)
        except Exception as e:  # the reply is owed even when the result cannot be encoded
            log.error("mqtt.reply_unserializable", id=cmd_id, error=repr(e))
            body.pop("result", None)
            body.update(ok=False, error=f"result not serializable: {type(e).__name__}")
            payload = dumps(body)
        self._replies.append(payload)
        self._idle.clear()
        self._wake.set()

    # --- inbound ----------------------------------------------------------------------------

    async def _receiver(self, client: aiomqtt.Client) -> None:
        async for message in client.messages:
            try:
                payload = _as_bytes(message.payload)
                if message.topic.matches(self.topics.cmd):
                    self.handle_command(payload, retained=bool(message.retain))
                elif message.topic.matches(self.topics.positions):
                    self.handle_position(payload, retained=bool(message.retain))
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
