"""The bridge's outbound side: its state, the engine-facing calls (`emit`, `request_state`,
`telemetry`: synchronous, never block, never raise), the bounded event and reply queues, and the
sender that drains them and publishes the state document while connected."""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from typing import Any

import aiomqtt
import structlog

from bot.clock import monotonic_s, wall_ms
from bot.config_ops import MqttConfig
from bot.control import Controller
from bot.events import Event, EventSink
from bot.io import mqtt_inbox
from bot.io.command_auth import ReplayCache
from bot.io.mqtt_schema_in import ExternalPositionIn
from bot.io.mqtt_twins import Twins
from bot.io.mqtt_wire import Topics, dumps

log = structlog.get_logger("hedgebot.mqtt")

# Replies are small and one per command; the cap only guards memory against a flood (the
# oldest are dropped: under a flood the sender cannot keep up anyway).
_REPLY_QUEUE_MAX = 1_000
PUBLISH_TIMEOUT_S = 10.0

# Events that change the state document (trading state, settings, external positions, feeds)
# are followed by a state publish, so an operator sees a halt at once, not at the next interval.
_STATE_EVENT_KINDS = frozenset({"state"})
_STATE_ALERTS = frozenset({"trading.halted", "risk.breaker_open", "stream.error", "order.stuck"})

ExternalPositionCallback = Callable[[ExternalPositionIn], None]


class Outbox:
    """State and outbound side of the MQTT bridge; the constructor is documented on MqttBridge."""

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
        self._twins = Twins()  # another daemon under this bot_id (mqtt_twins.py)

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

    # --- outbound ---------------------------------------------------------------------------

    async def _publish(
        self, client: aiomqtt.Client, topic: str, payload: bytes | str, retain: bool = False
    ) -> None:
        # QoS 1: a PUBACK is the only proof the broker has it; an event "published" into a dead
        # socket at QoS 0 would be lost without a trace.
        await client.publish(topic, payload, qos=1, retain=retain, timeout=PUBLISH_TIMEOUT_S)

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
