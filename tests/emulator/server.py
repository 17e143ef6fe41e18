"""The aiohttp server shared by the protocol modules: port, fault middleware, websockets, pulses.

Only ever binds 127.0.0.1 on a free port.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSMsgType, web

from tests.emulator.state import ExchangeState

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

PULSE_S = 0.05  # how often subscribed market channels are republished


@dataclass
class Connection:
    ws: web.WebSocketResponse
    channels: set[str] = field(default_factory=set)
    # per channel, per side: what this connection has been told (for book diffs)
    sent_books: dict[str, dict[str, dict[float, float]]] = field(default_factory=dict)
    listen_key: str | None = None

    def send(self, payload: Any) -> None:
        if not self.ws.closed:
            asyncio.get_running_loop().create_task(self._send(json.dumps(payload)))

    async def _send(self, text: str) -> None:
        with contextlib.suppress(ConnectionError, RuntimeError):
            await self.ws.send_str(text)


class BaseEmulator:
    """Subclasses add routes, render messages, and publish market channels on each pulse."""

    def __init__(self, state: ExchangeState) -> None:
        self.state = state
        self.faults = state.faults
        self.connections: list[Connection] = []
        self.app = web.Application(middlewares=[self._faults_middleware])
        self._runner: web.AppRunner | None = None
        self._pulse: asyncio.Task[None] | None = None
        self._release = asyncio.Event()
        self.port = 0
        self.add_routes(self.app)
        state.listeners.append(self._on_event)

    # -- to override ------------------------------------------------------------------------

    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    def publish_market(self, conn: Connection) -> None:
        """Send this connection its subscribed market channels (called every pulse)."""

    def on_event(self, event: str, payload: Any) -> None:
        """Private events (orders, trades, positions) to push to subscribed connections."""

    # -- lifecycle --------------------------------------------------------------------------

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def ws_base(self) -> str:
        return f"ws://127.0.0.1:{self.port}"

    async def start(self) -> BaseEmulator:
        self._runner = web.AppRunner(self.app, shutdown_timeout=0.5)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        server = site._server
        assert server is not None and server.sockets
        self.port = server.sockets[0].getsockname()[1]
        self._pulse = asyncio.get_running_loop().create_task(self._pulse_loop())
        return self

    async def stop(self) -> None:
        self._release.set()
        if self._pulse is not None:
            self._pulse.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._pulse
        for conn in list(self.connections):
            await conn.ws.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # -- faults -----------------------------------------------------------------------------

    async def drop_websockets(self) -> int:
        """Close every websocket, as a venue does on a disconnect. Returns how many."""
        conns = list(self.connections)
        for conn in conns:
            await conn.ws.close(code=1006, message=b"emulator drop")
        return len(conns)

    async def hang(self) -> None:
        """Never answer (until the emulator stops): the client's request times out."""
        with contextlib.suppress(asyncio.TimeoutError):
            await asyncio.wait_for(self._release.wait(), 120)

    @web.middleware
    async def _faults_middleware(
        self, request: web.Request, handler: Handler
    ) -> web.StreamResponse:
        is_ws = request.headers.get("Upgrade", "").lower() == "websocket"
        if not is_ws:
            self.state.requests.append(f"{request.method} {request.path}")
            if self.faults.http_errors:
                status = self.faults.http_errors.pop(0)
                return web.Response(status=status, text=f"emulated {status}")
        return await handler(request)

    # -- websockets -------------------------------------------------------------------------

    async def serve_ws(
        self,
        request: web.Request,
        on_message: Callable[[Connection, dict[str, Any]], None],
        listen_key: str | None = None,
    ) -> web.WebSocketResponse:
        ws = web.WebSocketResponse(heartbeat=None)
        await ws.prepare(request)
        conn = Connection(ws, listen_key=listen_key)
        self.connections.append(conn)
        try:
            async for msg in ws:
                if msg.type == WSMsgType.TEXT:
                    try:
                        data = json.loads(msg.data)
                    except ValueError:
                        continue
                    if isinstance(data, dict):
                        on_message(conn, data)
                elif msg.type in (WSMsgType.ERROR, WSMsgType.CLOSE):
                    break
        finally:
            if conn in self.connections:
                self.connections.remove(conn)
        return ws

    def _on_event(self, event: str, payload: Any) -> None:
        if self.faults.mute_streams or (self.faults.mute_positions and event == "position"):
            return
        self.on_event(event, payload)

    async def _pulse_loop(self) -> None:
        while True:
            await asyncio.sleep(PULSE_S)
            if self.faults.mute_streams:
                continue
            for conn in list(self.connections):
                if not conn.ws.closed:
                    self.publish_market(conn)


def book_diff(
    conn: Connection, channel: str, side: str, levels: list[tuple[float, float]]
) -> list[tuple[float, float]]:
    """Level changes since this connection was last told, absolute amounts, 0 = removed."""
    sent = conn.sent_books.setdefault(channel, {}).setdefault(side, {})
    now = dict(levels)
    changes = [(p, a) for p, a in now.items() if sent.get(p) != a]
    changes += [(p, 0.0) for p in sent if p not in now]
    conn.sent_books[channel][side] = now
    return changes
