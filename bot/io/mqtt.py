"""The MQTT bridge: telemetry out (status, state, events, replies) and commands in.

The broker is never on the money path. Everything the engine hands the bridge (`emit`,
`request_state`) is synchronous, never blocks and never raises; the network side runs in its own
task (`run`) that connects, reconnects with backoff and drains bounded buffers. When the broker is
down the engine does not notice, apart from the drop counter in the state document.

Layout: this module holds the connection and its supervision (`MqttBridge`); the outbound
queues and publishing are in mqtt_outbox.py, the command and position inbox in mqtt_commands.py,
the wire format (topics, JSON) in mqtt_wire.py, and the operator tools' client in mqtt_tools.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import random

import aiomqtt

from bot.io import mqtt_inbox
from bot.io.mqtt_commands import CommandInbox
from bot.io.mqtt_outbox import PUBLISH_TIMEOUT_S, log
from bot.io.mqtt_schema_out import STATUS_OFFLINE, STATUS_ONLINE
from bot.io.mqtt_tools import client

_OFFLINE_TIMEOUT_S = 2.0


class MqttBridge(CommandInbox):
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
        return client(
            self._cfg,
            self._bot_id,
            PUBLISH_TIMEOUT_S,
            will=aiomqtt.Will(self.topics.status, STATUS_OFFLINE.encode(), qos=1, retain=True),
            max_queued_incoming_messages=mqtt_inbox.MAX_MESSAGES,
            queue_type=mqtt_inbox.queue_type(self._inbox),
            logger=mqtt_inbox.aiomqtt_logger(),
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
                topics = [self.topics.cmd, self.topics.positions, self.topics.instance]
                await client.subscribe([(t, 1) for t in topics])
                await client.publish(self.topics.instance, self._twins.marker(), qos=1, retain=True)
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
