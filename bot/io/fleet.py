"""`hedgebot status` and `hedgebot fleet`: read the retained state that bots publish on MQTT.

One bot per account, on as many machines as needed, all publishing to one broker: `fleet` is the
operator's single view of all of them. Both commands only read (a `viewer` broker user suffices).
The CLI declares their arguments in bot/io/fleet_cli.py; what a bot's messages say is folded
in bot/io/fleet_state.py and rendered in bot/io/fleet_render.py; here are the broker side and
the two commands.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
from collections.abc import Callable

import aiomqtt
from rich.console import Console, RenderableType
from rich.live import Live

from bot.clock import wall_ms
from bot.config import ConfigError, load_settings
from bot.config_ops import MqttConfig
from bot.io.fleet_render import render_fleet_table, render_status
from bot.io.fleet_state import BotView, apply_message
from bot.io.mqtt_tools import tool_broker, tool_client


def _now_ms() -> int:
    return wall_ms()


# --- broker side --------------------------------------------------------------------------------


def _client(cfg: MqttConfig) -> aiomqtt.Client:
    return tool_client(cfg, "viewer")


async def collect(
    cfg: MqttConfig,
    topics: list[str],
    wait_s: float,
    *,
    done: Callable[[dict[str, BotView]], bool] | None = None,
    on_update: Callable[[dict[str, BotView]], None] | None = None,
) -> dict[str, BotView]:
    """Subscribe to `topics` and fold messages into bot views for `wait_s` seconds (forever if
    wait_s is inf), or until `done(views)` is true. Raises aiomqtt.MqttError when the
    broker cannot be reached."""
    views: dict[str, BotView] = {}
    async with _client(cfg) as client:
        for t in topics:
            await client.subscribe(t, qos=1)
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(None if wait_s == float("inf") else wait_s):
                async for m in client.messages:
                    payload = m.payload if isinstance(m.payload, bytes | bytearray) else b""
                    bot = apply_message(
                        views, cfg.topic_prefix, m.topic.value, bytes(payload), _now_ms()
                    )
                    if bot is None:
                        continue
                    if on_update is not None:
                        on_update(views)
                    if done is not None and done(views):
                        break
    return views


# --- CLI ----------------------------------------------------------------------------------------


def _resolve(args: argparse.Namespace) -> tuple[MqttConfig, str]:
    """Broker settings: the config file (and environment) first, then --host/--port."""
    settings = load_settings(getattr(args, "config", None))
    return tool_broker(settings, args.host, args.port, args.bot_id)


def cmd_status(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    try:
        cfg, bot_id = _resolve(args)
    except ConfigError as e:
        console.print(e.render(), style="red", markup=False)
        return 2
    base = f"{cfg.topic_prefix}/{bot_id}"
    topics = [f"{base}/state", f"{base}/status"]
    wait_s = float(args.timeout if args.timeout is not None else 5.0)

    def have_both(views: dict[str, BotView]) -> bool:
        v = views.get(bot_id)
        return v is not None and v.state is not None and v.status is not None

    try:
        views = asyncio.run(collect(cfg, topics, wait_s, done=have_both))
    except aiomqtt.MqttError as e:
        console.print(
            f"cannot reach the broker at {cfg.host}:{cfg.port}: {e}", style="red", markup=False
        )
        return 1
    view = views.get(bot_id)
    if view is None or view.state is None:
        console.print(
            f"no retained state for bot {bot_id!r} on {cfg.host}:{cfg.port} "
            f"(topic {base}/state) within {wait_s:g}s",
            style="red",
            markup=False,
        )
        return 1
    console.print(render_status(view, _now_ms()))
    if args.watch:
        return _watch(
            cfg,
            topics,
            console,
            lambda vs: render_status(vs.get(bot_id, view), _now_ms()),
            initial={bot_id: view},
        )
    return 0


def cmd_fleet(args: argparse.Namespace, console: Console | None = None) -> int:
    console = console or Console()
    try:
        cfg, _ = _resolve(args)
    except ConfigError as e:
        console.print(e.render(), style="red", markup=False)
        return 2
    topics = [f"{cfg.topic_prefix}/+/state", f"{cfg.topic_prefix}/+/status"]
    if args.watch:
        return _watch(cfg, topics, console, lambda vs: render_fleet_table(vs.values(), _now_ms()))
    wait_s = float(args.timeout if args.timeout is not None else 2.0)
    try:
        views = asyncio.run(collect(cfg, topics, wait_s))
    except aiomqtt.MqttError as e:
        console.print(
            f"cannot reach the broker at {cfg.host}:{cfg.port}: {e}", style="red", markup=False
        )
        return 1
    except KeyboardInterrupt:
        views = {}
    if not views:
        console.print(
            f"no bots on {cfg.host}:{cfg.port} under {cfg.topic_prefix}/", style="red", markup=False
        )
        return 1
    console.print(render_fleet_table(views.values(), _now_ms()))
    return 0


def _watch(
    cfg: MqttConfig,
    topics: list[str],
    console: Console,
    render: Callable[[dict[str, BotView]], RenderableType],
    initial: dict[str, BotView] | None = None,
) -> int:
    """Re-render on every update until Ctrl-C."""
    views: dict[str, BotView] = dict(initial or {})
    with Live(render(views), console=console, refresh_per_second=2) as live:

        def update(vs: dict[str, BotView]) -> None:
            views.update(vs)
            live.update(render(views))

        try:
            asyncio.run(collect(cfg, topics, float("inf"), on_update=update))
        except KeyboardInterrupt:
            pass
        except aiomqtt.MqttError as e:
            console.print(f"broker connection lost: {e}", style="red", markup=False)
            return 1
    return 0
