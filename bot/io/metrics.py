"""Prometheus metrics: counters fed by events, gauges read from the engine's state document.

Served on `metrics.host:metrics.port` by a threaded WSGI server: `/healthz` and `/readyz` answer
JSON from bot.io.health (200 or 503), every other path serves the metrics (`/metrics`).
A private registry keeps several daemons in one process (tests) from colliding.
"""

from __future__ import annotations

import json
import math
import socket
import threading
from collections.abc import Callable, Iterable
from http import HTTPStatus
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server
from wsgiref.types import StartResponse, WSGIApplication, WSGIEnvironment

import structlog
from prometheus_client import CollectorRegistry, Counter, Gauge, make_wsgi_app
from prometheus_client.exposition import ThreadingWSGIServer

from bot.clock import real_sleep
from bot.events import Event
from bot.io.health import Health

log = structlog.get_logger("hedgebot.metrics")

TRADING_STATES = ("active", "reducing_only", "halted", "paused")


class Metrics:
    """An EventSink (counters) plus `refresh(state)` for gauges."""

    def __init__(self, bot_id: str) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.events = Counter(
            "hedgebot_events", "events by kind and name", ["kind", "event"], registry=r
        )
        self.orders_sent = Counter("hedgebot_orders_sent", "orders sent", ["symbol"], registry=r)
        self.fills = Counter("hedgebot_fills", "fills booked", ["symbol"], registry=r)
        self.filled_contracts = Counter(
            "hedgebot_filled_contracts", "contracts filled", ["symbol", "side"], registry=r
        )
        self.fees = Counter("hedgebot_fees", "fees paid", ["currency"], registry=r)
        self.rejects = Counter(
            "hedgebot_rejects", "orders refused or rejected, by rule", ["rule"], registry=r
        )
        self._book_gauges(r)
        self._risk_and_cross_gauges(r)
        self._feed_and_route_gauges(r)
        self.info = Gauge(
            "hedgebot_info", "constant 1, labelled with the bot id", ["bot_id"], registry=r
        )
        self.info.labels(bot_id=bot_id).set(1)

    def _book_gauges(self, r: CollectorRegistry) -> None:
        self.delta_coin = Gauge(
            "hedgebot_delta_coin", "delta in coin, in-flight included", ["underlying"], registry=r
        )
        self.delta_usd = Gauge("hedgebot_delta_usd", "delta in USD", ["underlying"], registry=r)
        # The band of the latest decision (a policy may move it), in its unit.
        self.band = Gauge(
            "hedgebot_band",
            "half-width of the band in use (the wider side if asymmetric)",
            ["underlying", "unit"],
            registry=r,
        )
        self.band_lower = Gauge(
            "hedgebot_band_lower", "half-width below the target", ["underlying", "unit"], registry=r
        )
        self.band_upper = Gauge(
            "hedgebot_band_upper", "half-width above the target", ["underlying", "unit"], registry=r
        )
        self.halted = Gauge(
            "hedgebot_underlying_halted",
            "1 while an underlying cannot trade",
            ["underlying"],
            registry=r,
        )
        self.trading_state = Gauge(
            "hedgebot_trading_state", "1 for the current trading state", ["state"], registry=r
        )
        self.open_orders = Gauge("hedgebot_open_orders", "orders not yet settled", registry=r)
        self.stuck_orders = Gauge(
            "hedgebot_stuck_orders",
            "orders the venue gives no final state for (blocking their underlying)",
            ["underlying"],
            registry=r,
        )

    def _risk_and_cross_gauges(self, r: CollectorRegistry) -> None:
        self.var = Gauge(
            "hedgebot_var_usd",
            "1-day 99% VaR, USD (historical simulation); underlying=total for the book; NaN until "
            "there is history enough",
            ["underlying"],
            registry=r,
        )
        self.cvar = Gauge(
            "hedgebot_cvar_usd",
            "1-day 99% CVaR (mean loss beyond the VaR), USD; as hedgebot_var_usd",
            ["underlying"],
            registry=r,
        )
        self.cross_beta = Gauge(
            "hedgebot_cross_beta",
            "minimum-variance beta of a cross-hedged underlying on a proxy (NaN: none yet)",
            ["underlying", "proxy"],
            registry=r,
        )
        self.cross_corr = Gauge(
            "hedgebot_cross_corr", "correlation R of a cross hedge", ["underlying"], registry=r
        )
        self.cross_residual = Gauge(
            "hedgebot_cross_residual_std",
            "std of the cross hedge's residual log return per sample (basis risk)",
            ["underlying"],
            registry=r,
        )
        self.cross_active = Gauge(
            "hedgebot_cross_active",
            "1 while a cross hedge's beta holds (0: warmup or breakdown)",
            ["underlying"],
            registry=r,
        )

    def _feed_and_route_gauges(self, r: CollectorRegistry) -> None:
        self.feed_ok = Gauge("hedgebot_feed_ok", "1 while a feed is healthy", ["feed"], registry=r)
        line = ["underlying", "account", "symbol"]
        self.route_position = Gauge(
            "hedgebot_route_position_coin",
            "a routing candidate's position in coin, in-flight orders included",
            line,
            registry=r,
        )
        self.route_limit = Gauge(
            "hedgebot_route_limit_coin", "a routing candidate's position limit in coin", line,
            registry=r,
        )  # fmt: skip
        self.route_funding = Gauge(
            "hedgebot_route_funding_rate",
            "a candidate perp's funding rate per interval as last read; NaN when none or stale",
            line,
            registry=r,
        )

    def emit(self, event: Event) -> None:
        d = event.data
        self.events.labels(kind=event.kind, event=event.name).inc()
        if event.name == "order.sent":
            self.orders_sent.labels(symbol=str(d.get("symbol"))).inc()
        elif event.name == "order.fill":
            self.fills.labels(symbol=str(d.get("symbol"))).inc()
            self.filled_contracts.labels(symbol=str(d.get("symbol")), side=str(d.get("side"))).inc(
                float(d.get("amount", 0.0))
            )
            self.fees.labels(currency=str(d.get("fee_currency"))).inc(
                max(float(d.get("fee", 0)), 0)
            )
        elif event.kind == "reject":
            self.rejects.labels(rule=str(d.get("rule") or event.name)).inc()

    def refresh(self, state: dict[str, Any]) -> None:
        for u, s in state.get("underlyings", {}).items():
            if s.get("delta_coin") is not None:
                self.delta_coin.labels(underlying=u).set(s["delta_coin"])
                self.delta_usd.labels(underlying=u).set(s["delta_usd"])
            unit = s.get("unit", "coin")
            for gauge, key in (
                (self.band, "band"),
                (self.band_lower, "band_lower"),
                (self.band_upper, "band_upper"),
            ):
                if s.get(key) is not None:  # none before the first decision
                    gauge.labels(underlying=u, unit=unit).set(s[key])
            self.halted.labels(underlying=u).set(1 if s.get("halted") else 0)
            self._refresh_cross(u, s.get("cross"))
            self._refresh_routing(u, s.get("routing") or [])
        current = state.get("trading_state")
        for name in TRADING_STATES:
            self.trading_state.labels(state=name).set(1 if name == current else 0)
        self.open_orders.set(len(state.get("open_orders", [])))
        stuck: dict[str, int] = {u: 0 for u in state.get("underlyings", {})}
        for o in state.get("stuck_orders", []):
            u = str(o.get("underlying"))
            stuck[u] = stuck.get(u, 0) + 1
        for u, n in stuck.items():
            self.stuck_orders.labels(underlying=u).set(n)
        self._refresh_risk(state.get("risk") or {})
        for name, f in state.get("feeds", {}).items():
            self.feed_ok.labels(feed=name).set(1 if f.get("ok") else 0)

    def _refresh_cross(self, u: str, c: dict[str, Any] | None) -> None:
        if not c or "proxies" not in c:
            return  # no cross hedge, or a proxy (what it carries is in its delta)
        beta = c.get("beta") or {}
        for p in c["proxies"]:
            self.cross_beta.labels(underlying=u, proxy=p).set(_num(beta.get(p)))
        self.cross_corr.labels(underlying=u).set(_num(c.get("corr")))
        self.cross_residual.labels(underlying=u).set(_num(c.get("residual_std")))
        self.cross_active.labels(underlying=u).set(1 if c.get("status") == "active" else 0)

    def _refresh_routing(self, underlying: str, rows: list[dict[str, Any]]) -> None:
        for c in rows:
            labels = {"underlying": underlying, "account": c["account"], "symbol": c["symbol"]}
            self.route_position.labels(**labels).set(c["position_coin"])
            self.route_limit.labels(**labels).set(c["limit_coin"])
            rate = c.get("funding_rate")
            fresh = c.get("funding") == "fresh"
            self.route_funding.labels(**labels).set(
                float(rate) if fresh and rate is not None else math.nan
            )

    def _refresh_risk(self, block: dict[str, Any]) -> None:
        rows = dict(block.get("underlyings") or {})
        if block.get("total") is not None:
            rows["total"] = block["total"]
        for u, r in rows.items():
            for gauge, key in ((self.var, "var_99_usd"), (self.cvar, "cvar_99_usd")):
                v = r.get(key)
                gauge.labels(underlying=u).set(math.nan if v is None else float(v))


def _num(v: Any) -> float:
    return float(v) if isinstance(v, int | float) else math.nan


def make_app(registry: CollectorRegistry, health: Health | None) -> WSGIApplication:
    metrics_app = make_wsgi_app(registry)

    def app(environ: WSGIEnvironment, start_response: StartResponse) -> Iterable[bytes]:
        path = environ.get("PATH_INFO", "")
        if health is None or path not in ("/healthz", "/readyz"):
            served: Iterable[bytes] = metrics_app(environ, start_response)
            return served
        code, body = health.healthz() if path == "/healthz" else health.readyz()
        data = json.dumps(body).encode()
        start_response(
            f"{code} {HTTPStatus(code).phrase}",
            [
                ("Content-Type", "application/json"),
                ("Content-Length", str(len(data))),
                ("Cache-Control", "no-store"),
            ],
        )
        return [data]

    return app


class _QuietHandler(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # a scrape every few seconds is not worth a log line


class _Server4(ThreadingWSGIServer):
    address_family = socket.AF_INET


class _Server6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


def serve(metrics: Metrics, host: str, port: int, health: Health | None = None) -> WSGIServer:
    """Starts the HTTP server on a daemon thread; OSError when the port cannot be bound."""
    server_class = _Server6 if ":" in host else _Server4
    app = make_app(metrics.registry, health)
    server = make_server(host, port, app, server_class, handler_class=_QuietHandler)
    threading.Thread(target=server.serve_forever, name="metrics-http", daemon=True).start()
    log.info(
        "metrics.serving",
        url=f"http://{host}:{port}/metrics",
        health=f"http://{host}:{port}/healthz" if health is not None else None,
    )
    return server


async def refresh_forever(
    metrics: Metrics, state: Callable[[], dict[str, Any]], interval_s: float
) -> None:
    while True:
        try:
            metrics.refresh(state())
        except Exception as e:  # metrics must never take the daemon down
            log.warning("metrics.refresh_failed", error=repr(e))
        await real_sleep(interval_s)
