"""`hedgebot fleet`'s table (one row per bot) and `hedgebot status`'s view of one bot (its row,
then greeks, routing, feeds and risk), rendered with rich from the bots' state documents. Every
value is checked before use: a state from another version of the bot renders as "-" or "?"."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from bot.io.fleet_state import BotView
from bot.io.status_routing import routing_table


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
