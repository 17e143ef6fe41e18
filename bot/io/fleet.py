"""`hedgebot status` and `hedgebot fleet`: read the retained state that bots publish on MQTT.

One bot per account, on as many machines as needed, all publishing to one broker: `fleet` is the
operator's single view of all of them. Both commands only read (a `viewer` broker user suffices).
The CLI declares their arguments in bot/io/fleet_cli.py (`register`, re-exported here).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiomqtt
from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.table import Table
from rich.text import Text

from bot.clock import wall_ms
from bot.config import ConfigError, load_settings
from bot.config_ops import MqttConfig
from bot.io.fleet_cli import register as register
from bot.io.mqtt_tools import tool_broker, tool_client
from bot.io.status_routing import routing_table


def _now_ms() -> int:
    return wall_ms()


@dataclass
class BotView:
    """What the broker told us about one bot."""

    bot_id: str
    status: str | None = None  # "online" / "offline" / None if never seen
    state: dict[str, Any] | None = None
    updated_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def apply_message(
    views: dict[str, BotView], prefix: str, topic: str, payload: bytes, now_ms: int
) -> str | None:
    """Fold one message into `views`; returns the bot id it was about, or None if ignored."""
    parts = topic.split("/")
    head = prefix.split("/")
    if len(parts) != len(head) + 2 or parts[: len(head)] != head:
        return None
    bot_id, kind = parts[len(head)], parts[len(head) + 1]
    if not payload:  # a cleared retained message
        return None
    if kind == "status":
        view = views.setdefault(bot_id, BotView(bot_id))
        view.status = payload.decode("utf-8", "replace").strip()
    elif kind == "state":
        try:
            doc = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        view = views.setdefault(bot_id, BotView(bot_id))
        view.state = doc
    else:
        return None
    view.updated_ms = now_ms
    return bot_id


# --- rendering ----------------------------------------------------------------------------------


def _age(ms: float | None) -> str:
    if ms is None:
        return "?"
    s = max(ms, 0) / 1000.0
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    return f"{s / 3600:.1f}h"


def _num(v: Any) -> float | None:
    return float(v) if isinstance(v, int | float) and not isinstance(v, bool) else None


def _status_text(view: BotView) -> Text:
    if view.status == "online":
        return Text("online", style="green")
    if view.status == "offline":
        return Text("offline", style="red")
    return Text(view.status or "?", style="yellow")


def _mode(state: dict[str, Any]) -> str:
    if isinstance(state.get("mode"), str):
        return str(state["mode"])
    accounts = state.get("accounts")
    if isinstance(accounts, dict):
        modes = sorted(
            {str(a.get("mode")) for a in accounts.values() if isinstance(a, dict) and a.get("mode")}
        )
        return ",".join(modes) or "?"
    return "?"


def _deltas(state: dict[str, Any]) -> Text:
    out = Text()
    unders = state.get("underlyings")
    if not isinstance(unders, dict) or not unders:
        return Text("-")
    for i, (name, u) in enumerate(sorted(unders.items())):
        if not isinstance(u, dict):
            continue
        if i:
            out.append("\n")
        coin, usd = _num(u.get("delta_coin")), _num(u.get("delta_usd"))
        target, band = _num(u.get("target")) or 0.0, _num(u.get("band"))
        unit = u.get("unit") if u.get("unit") in ("coin", "usd") else "coin"
        measured = usd if unit == "usd" else coin
        outside = band is not None and measured is not None and abs(measured - target) > band
        line = f"{name} {coin:+.4f}" if coin is not None else f"{name} ?"
        if usd is not None:
            line += f" / ${usd:+,.0f}"
        if band is not None:
            line += f"  ({target:+g} ±{band:g} {unit})"
        out.append(line, style="bold red" if outside else "")
    return out


def _feeds(state: dict[str, Any]) -> Text:
    feeds = state.get("feeds")
    if not isinstance(feeds, dict) or not feeds:
        return Text("-")
    bad = sorted(n for n, f in feeds.items() if not (isinstance(f, dict) and f.get("ok")))
    if not bad:
        return Text("ok", style="green")
    return Text("stale: " + ",".join(bad), style="red")


def _open_orders(state: dict[str, Any]) -> str:
    oo = state.get("open_orders")
    if isinstance(oo, list):
        return str(len(oo))
    if isinstance(oo, int) and not isinstance(oo, bool):
        return str(oo)
    return "-"


def _trading_state(state: dict[str, Any]) -> Text:
    ts = state.get("trading_state")
    if not isinstance(ts, str):
        return Text("?")
    style = "green" if ts == "active" else "yellow" if ts in ("paused", "reducing_only") else "red"
    return Text(ts, style=style)


def render_fleet_table(views: Iterable[BotView], now_ms: int) -> Table:
    table = Table(title="hedgebot fleet", expand=False)
    for col in ("bot", "status", "mode", "trading", "delta (coin / usd, target ± band)"):
        table.add_column(col)
    table.add_column("open orders", justify="right")
    table.add_column("feeds")
    table.add_column("age", justify="right")
    for view in sorted(views, key=lambda v: v.bot_id):
        st = view.state or {}
        ts = _num(st.get("ts_ms"))
        table.add_row(
            view.bot_id,
            _status_text(view),
            _mode(st) if st else "-",
            _trading_state(st) if st else Text("-"),
            _deltas(st) if st else Text("no state"),
            _open_orders(st),
            _feeds(st),
            _age(now_ms - ts if ts is not None else None),
        )
    return table


def render_status(view: BotView, now_ms: int) -> RenderableType:
    parts: list[RenderableType] = [render_fleet_table([view], now_ms)]
    st = view.state or {}
    mq = st.get("mqtt")
    if isinstance(mq, dict):
        parts.append(
            Text(
                "mqtt: " + ", ".join(f"{k}={v}" for k, v in sorted(mq.items()) if k != "connected"),
                style="dim",
            )
        )
    greeks = _greeks_table(st)
    if greeks is not None:
        parts.append(greeks)
    routing = routing_table(st)
    if routing is not None:
        parts.append(routing)
    feeds = st.get("feeds")
    if isinstance(feeds, dict) and feeds:
        t = Table(title="feeds")
        t.add_column("feed")
        t.add_column("ok")
        t.add_column("age", justify="right")
        for name, f in sorted(feeds.items()):
            f = f if isinstance(f, dict) else {}
            t.add_row(name, "yes" if f.get("ok") else "NO", _age(_num(f.get("age_ms"))))
        parts.append(t)
    risk = _risk_table(st.get("risk"))
    if risk is not None:
        parts.append(risk)
    return Group(*parts)


def _fmt(v: Any, spec: str) -> str:
    n = _num(v)
    return "-" if n is None else format(n, spec)


def _greeks_table(state: dict[str, Any]) -> Table | None:
    """Greeks per underlying, rounded to what they mean (the state keeps full precision)."""
    unders = state.get("underlyings")
    if not isinstance(unders, dict) or not unders:
        return None
    t = Table(title="greeks")
    t.add_column("underlying")
    for col in ("delta coin", "delta usd", "gamma coin/usd", "vega usd/vol", "theta usd/yr"):
        t.add_column(col, justify="right")
    for name, u in sorted(unders.items()):
        u = u if isinstance(u, dict) else {}
        t.add_row(
            name,
            _fmt(u.get("delta_coin"), "+.6f"),
            _fmt(u.get("delta_usd"), "+,.2f"),
            _fmt(u.get("gamma_coin"), "+.3g"),
            _fmt(u.get("vega_usd"), "+,.2f"),
            _fmt(u.get("theta_usd"), "+,.2f"),
        )
    return t


def _usd(v: Any) -> str:
    n = _num(v)
    return "-" if n is None else f"${n:,.0f}"


def _risk_table(block: Any) -> Table | None:
    """VaR, CVaR and the worst scenario cell per underlying and for the book ("-": no number
    yet, too little history or a book that cannot be valued)."""
    if not isinstance(block, dict):
        return None
    rows = dict(block.get("underlyings") or {})
    rows["total"] = block.get("total")
    t = Table(title="risk (1-day 99%, historical; worst scenario cell)")
    for col in ("underlying", "VaR", "CVaR", "samples", "worst cell"):
        t.add_column(col, justify="left" if col in ("underlying", "worst cell") else "right")
    for name, r in rows.items():
        if not isinstance(r, dict):
            continue
        grid = r.get("scenarios")
        worst = grid.get("worst") if isinstance(grid, dict) else None
        cell = "-"
        if isinstance(worst, dict):
            sp, ivp = _num(worst.get("spot_pct")), _num(worst.get("iv_points"))
            where = "?" if sp is None or ivp is None else f"spot {sp:+g}% iv {ivp:+g}pt"
            cell = f"{_usd(worst.get('pnl_usd'))} at {where}"
        if r.get("error"):
            cell = str(r["error"])
        samples = r.get("samples")
        t.add_row(name, _usd(r.get("var_99_usd")), _usd(r.get("cvar_99_usd")), str(samples), cell)
    return t


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
