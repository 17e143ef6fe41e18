"""Deribit API v2 as ccxt's deribit classes call it: JSON-RPC results over HTTP GET
(/api/v2/public/..., /api/v2/private/...) and JSON-RPC subscriptions over /ws/api/v2."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from tests.emulator.server import BaseEmulator, Connection, book_diff
from tests.emulator.state import ExchangeState, Market, Order, RejectError, Trade, now_ms

# Deribit error codes ccxt maps (ccxt/async_support/deribit.py `exceptions`).
_CODES = {
    "bad_symbol": (10026, "instrument_not_found"),  # ccxt: BadSymbol? falls back to ExchangeError
    "bad_amount": (10007, "amount_too_low"),
    "duplicate": (11029, "invalid_arguments"),
    "reduce_only": (11044, "not_open_order"),
    "post_only": (10024, "post_only_reject"),
    "not_found": (10004, "order_not_found"),
    "not_open": (11044, "not_open_order"),
}


def default_markets() -> list[Market]:
    expiry = 1893456000000  # 2030-01-01
    return [
        Market(
            "BTC-PERPETUAL",
            "BTC",
            "USD",
            "BTC",
            inverse=True,
            contract_size=10.0,
            tick=0.5,
            step=10.0,
            min_amount=10.0,
            taker_fee=0.0005,
            maker_fee=0.0,
            mark=60000.0,
            index=60000.0,
        ),
        Market(
            "BTC-1JAN30",
            "BTC",
            "USD",
            "BTC",
            inverse=True,
            contract_size=10.0,
            tick=2.5,
            step=10.0,
            min_amount=10.0,
            expiry_ms=expiry,
            mark=61000.0,
            index=60000.0,
        ),
        Market(
            "BTC-1JAN30-60000-C",
            "BTC",
            "USD",
            "BTC",
            inverse=True,
            kind="option",
            contract_size=1.0,
            tick=0.0005,
            step=0.1,
            min_amount=0.1,
            taker_fee=0.0003,
            maker_fee=0.0003,
            expiry_ms=expiry,
            strike=60000.0,
            option_type="call",
            mark=0.2,
            index=60000.0,
            iv=0.6127,
            delta=0.62,
        ),
    ]


def linear_perp_market() -> Market:
    """BTC_USDT-PERPETUAL as Deribit lists it (ccxt's recorded deribit markets): amounts in BTC,
    contract_size 0.001, min_trade_amount 0.001, tick 1. Opt-in, so default listings stay put."""
    return Market(
        "BTC_USDT-PERPETUAL",
        "BTC",
        "USDT",
        "USDT",
        contract_size=0.001,
        tick=1.0,
        step=0.001,
        min_amount=0.001,
        taker_fee=0.0005,
        maker_fee=0.0,
        mark=60000.0,
        index=60000.0,
    )


class DeribitEmulator(BaseEmulator):
    def __init__(self, state: ExchangeState | None = None) -> None:
        super().__init__(state or ExchangeState(default_markets(), {"BTC": 1.0, "ETH": 10.0}))

    def config_urls(self) -> dict[str, str]:
        """AccountConfig.urls pointing ccxt's deribit at this emulator."""
        return {"rest": self.base_url, "ws": f"{self.ws_base}/ws/api/v2"}

    def add_routes(self, app: web.Application) -> None:
        app.router.add_get("/ws/api/v2", self._ws)
        app.router.add_route("*", "/api/v2/{scope}/{method}", self._rest)

    # -- wire format ------------------------------------------------------------------------

    def _instrument(self, m: Market) -> dict[str, Any]:
        kind = m.kind
        out: dict[str, Any] = {
            "tick_size": m.tick,
            "taker_commission": m.taker_fee,
            "maker_commission": m.maker_fee,
            "settlement_period": "perpetual" if m.expiry_ms is None else "month",
            "settlement_currency": m.settle,
            "quote_currency": m.quote if kind != "option" else m.base,
            "min_trade_amount": m.min_amount,
            "kind": kind,
            "is_active": True,
            "instrument_name": m.id,
            "expiration_timestamp": m.expiry_ms or 32503708800000,
            "creation_timestamp": 1534242287000,
            "counter_currency": m.quote,
            "contract_size": m.contract_size,
            "base_currency": m.base,
            "block_trade_commission": 0.0001,
            "price_index": f"{m.base.lower()}_usd",
        }
        if kind == "future":
            out.update(future_type="reversed" if m.inverse else "linear", max_leverage=50)
        if kind == "option":
            out.update(strike=m.strike, option_type=m.option_type)
        return out

    def _ticker(self, m: Market) -> dict[str, Any]:
        bid = self.state.best(m.id, "bids")
        ask = self.state.best(m.id, "asks")
        out: dict[str, Any] = {
            "timestamp": now_ms(),
            "state": "open",
            "instrument_name": m.id,
            "mark_price": m.mark,
            "index_price": m.index,
            "last_price": m.mark,
            "best_bid_price": bid[0] if bid else 0.0,
            "best_bid_amount": bid[1] if bid else 0.0,
            "best_ask_price": ask[0] if ask else 0.0,
            "best_ask_amount": ask[1] if ask else 0.0,
            "open_interest": 1000.0,
            "min_price": m.mark * 0.95,
            "max_price": m.mark * 1.05,
            "estimated_delivery_price": m.index,
            "stats": {"volume": 100.0, "price_change": 0.0, "low": m.mark, "high": m.mark},
        }
        if m.kind == "option":
            out.update(
                underlying_price=m.index,
                underlying_index="index_price",
                interest_rate=0.0,
                mark_iv=round((m.iv or 0.0) * 100, 4),
                bid_iv=0.0,
                ask_iv=0.0,
                greeks={
                    "delta": m.delta,
                    "gamma": 0.00002,
                    "vega": 60.0,
                    "theta": -40.0,
                    "rho": 10.0,
                },
            )
        else:
            out.update(current_funding=0.0, funding_8h=m.funding_8h)
        return out

    def _order(self, o: Order) -> dict[str, Any]:
        state = {"open": "open", "filled": "filled", "cancelled": "cancelled"}.get(o.status)
        return {
            "web": False,
            "time_in_force": "good_til_cancelled",
            "replaced": False,
            "reduce_only": o.reduce_only,
            "post_only": o.post_only,
            "price": o.price,
            "order_type": "limit",
            "order_state": state or "rejected",
            "order_id": o.id,
            "max_show": o.amount,
            "last_update_timestamp": o.updated_ms,
            "creation_timestamp": o.created_ms,
            "label": o.client_id,
            "is_liquidation": False,
            "instrument_name": o.symbol,
            "filled_amount": o.filled,
            "direction": o.side,
            "average_price": o.average,
            "api": True,
            "amount": o.amount,
            "commission": 0.0,
        }

    def _trade(self, t: Trade) -> dict[str, Any]:
        m = self.state.markets[t.order.symbol]
        return {
            "trade_seq": int(t.id[1:]),
            "trade_id": t.id,
            "timestamp": t.ts,
            "tick_direction": 1,
            "state": "filled" if t.order.status == "filled" else "open",
            "reduce_only": t.order.reduce_only,
            "price": t.price,
            "post_only": t.order.post_only,
            "order_type": "limit",
            "order_id": t.order.id,
            "mark_price": m.mark,
            "liquidity": "M" if t.maker else "T",
            "label": t.order.client_id,
            "instrument_name": m.id,
            "index_price": m.index,
            "fee_currency": t.fee_currency,
            "fee": t.fee,
            "direction": t.order.side,
            "amount": t.amount,
        }

    def _position(self, symbol: str) -> dict[str, Any]:
        m = self.state.markets[symbol]
        pos = self.state.positions.get(symbol)
        size = pos.qty if pos else 0.0
        out: dict[str, Any] = {
            "instrument_name": symbol,
            "kind": m.kind,
            "size": size,
            "direction": "buy" if size > 0 else ("sell" if size < 0 else "zero"),
            "average_price": pos.entry if pos else 0.0,
            "mark_price": m.mark,
            "index_price": m.index,
            "floating_profit_loss": 0.0,
            "total_profit_loss": 0.0,
            "realized_profit_loss": 0.0,
            "initial_margin": 0.0,
            "maintenance_margin": 0.0,
            "leverage": 50,
            "settlement_price": m.mark,
            "delta": size / m.mark if m.inverse and m.kind == "future" and m.mark else size,
        }
        out["size_currency"] = size / m.mark if m.inverse and m.mark else size
        return out

    # -- REST -------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        method = f"{request.match_info['scope']}/{request.match_info['method']}"
        params = dict(request.query)
        if method in ("private/buy", "private/sell") and self.faults.hang_creates > 0:
            self.faults.hang_creates -= 1
            with contextlib.suppress(RejectError):
                self.call(method, params)  # the venue takes the order ...
            await self.hang()  # ... and the answer never comes back
        try:
            result = self.call(method, params)
        except RejectError as e:
            code, name = _CODES.get(e.code, (10000, "error"))
            body = {
                "jsonrpc": "2.0",
                "error": {"code": code, "message": name, "data": {"reason": e.message}},
            }
            return web.json_response(body, status=400)
        except KeyError as e:
            body = {"jsonrpc": "2.0", "error": {"code": -32601, "message": f"Method not found {e}"}}
            return web.json_response(body, status=400)
        return web.json_response(
            {
                "jsonrpc": "2.0",
                "result": result,
                "usIn": 0,
                "usOut": 0,
                "usDiff": 0,
                "testnet": True,
            }
        )

    def call(self, method: str, p: dict[str, Any]) -> Any:
        st = self.state
        markets = st.markets
        if method == "public/get_currencies":
            return [
                {
                    "currency": c,
                    "currency_long": c,
                    "coin_type": "BITCOIN",
                    "fee_precision": 4,
                    "min_confirmations": 1,
                    "min_withdrawal_fee": 0.0001,
                    "withdrawal_fee": 0.0001,
                    "withdrawal_priorities": [],
                }
                for c in sorted({m.settle for m in markets.values()})
            ]
        if method == "public/get_instruments":
            cur = p.get("currency", "any")
            return [self._instrument(m) for m in markets.values() if cur in ("any", m.settle)]
        if method == "public/get_index_price":
            base = p["index_name"].split("_")[0].upper()
            price = next(m.index for m in markets.values() if m.base == base)
            return {"index_price": price, "estimated_delivery_price": price}
        if method == "public/get_funding_rate_value":
            # the funding over [start, end] (ccxt asks for the last 8 hours)
            m = self._market(p["instrument_name"])
            hours = (int(p["end_timestamp"]) - int(p["start_timestamp"])) / 3_600_000
            return m.funding_8h * hours / 8.0
        if method == "public/ticker":
            return self._ticker(self._market(p["instrument_name"]))
        if method == "public/get_order_book":
            m = self._market(p["instrument_name"])
            depth = int(p.get("depth", 20))
            out = self._ticker(m)
            out.update(
                bids=[list(x) for x in st.levels(m.id, "bids", depth)],
                asks=[list(x) for x in st.levels(m.id, "asks", depth)],
                change_id=1,
            )
            return out
        if method == "public/get_time":
            return now_ms()
        if method == "public/auth":
            return self._auth()
        if method == "private/get_positions":
            cur = p.get("currency", "any")
            return [
                self._position(s)
                for s, pos in st.positions.items()
                if cur in ("any", markets[s].settle) and pos.qty != 0
            ]
        if method in ("private/get_account_summaries", "private/get_account_summary"):
            summaries = [
                {
                    "currency": c,
                    "balance": b,
                    "equity": b,
                    "available_funds": b,
                    "margin_balance": b,
                    "maintenance_margin": 0.0,
                    "initial_margin": 0.0,
                    "delta_total": 0.0,
                }
                for c, b in st.balances.items()
            ]
            if method == "private/get_account_summary":
                return next(s for s in summaries if s["currency"] == p["currency"])
            return {"id": 1, "email": "emulator@example.invalid", "summaries": summaries}
        if method in ("private/buy", "private/sell"):
            side = method.split("/")[1]
            # Deribit does not enforce unique labels (design notes): neither does the emulator.
            order = st.place(
                self._market(p["instrument_name"]).id,
                side,
                float(p["amount"]),
                float(p["price"]),
                p.get("label", ""),
                reduce_only=p.get("reduce_only") == "true",
                post_only=p.get("post_only") == "true",
                unique_client_id=False,
            )
            trades = [self._trade(t) for t in st.trades if t.order is order]
            return {"order": self._order(order), "trades": trades}
        if method == "private/cancel":
            return self._order(st.cancel(p["order_id"]))
        if method == "private/get_order_state":
            order = st.orders.get(p["order_id"])
            if order is None:
                raise RejectError("not_found", p["order_id"])
            return self._order(order)
        if method == "private/get_order_state_by_label":
            return [
                self._order(o)
                for o in st.find_by_client_id(p["label"])
                if markets[o.symbol].settle == p.get("currency", markets[o.symbol].settle)
            ]
        if method in (
            "private/get_open_orders_by_currency",
            "private/get_open_orders",
            "private/get_open_orders_by_instrument",
        ):
            return [
                self._order(o)
                for o in st.orders.values()
                if o.status == "open" and self._selected(o.symbol, p)
            ]
        if method in (
            "private/get_order_history_by_currency",
            "private/get_order_history_by_instrument",
        ):
            return [
                self._order(o)
                for o in st.orders.values()
                if o.status != "open" and self._selected(o.symbol, p)
            ]
        if method in (
            "private/get_user_trades_by_currency",
            "private/get_user_trades_by_instrument",
        ):
            trades = [self._trade(t) for t in st.trades if self._selected(t.order.symbol, p)]
            return {"trades": trades, "has_more": False}
        if method == "private/get_user_trades_by_order":
            return [self._trade(t) for t in st.trades if t.order.id == p["order_id"]]
        raise KeyError(method)

    def _selected(self, symbol: str, p: dict[str, Any]) -> bool:
        if "instrument_name" in p:
            return symbol == p["instrument_name"]
        return p.get("currency", "any") in ("any", self.state.markets[symbol].settle)

    def _market(self, instrument: str) -> Market:
        m = self.state.markets.get(instrument)
        if m is None:
            raise RejectError("bad_symbol", instrument)
        return m

    def _auth(self) -> dict[str, Any]:
        return {
            "access_token": "emulator-token",
            "expires_in": 31536000,
            "refresh_token": "emulator-refresh",
            "scope": "connection mainaccount",
            "token_type": "bearer",
        }

    # -- websocket --------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        return await self.serve_ws(request, self._on_ws_message)

    def _on_ws_message(self, conn: Connection, msg: dict[str, Any]) -> None:
        method = msg.get("method", "")
        rid = msg.get("id")
        params = msg.get("params") or {}
        if method == "public/auth":
            conn.send({"jsonrpc": "2.0", "id": rid, "result": self._auth()})
        elif method in ("public/subscribe", "private/subscribe"):
            channels = list(params.get("channels", []))
            conn.channels.update(channels)
            conn.send({"jsonrpc": "2.0", "id": rid, "result": channels})
        elif method in ("public/unsubscribe", "private/unsubscribe"):
            channels = list(params.get("channels", []))
            conn.channels.difference_update(channels)
            conn.send({"jsonrpc": "2.0", "id": rid, "result": channels})
        else:
            conn.send({"jsonrpc": "2.0", "id": rid, "result": "ok"})

    def publish_market(self, conn: Connection) -> None:
        for channel in list(conn.channels):
            parts = channel.split(".")
            if parts[0] == "ticker" and parts[1] in self.state.markets:
                data = self._ticker(self.state.markets[parts[1]])
                conn.send(_notification(channel, data))
            elif parts[0] == "book" and parts[1] in self.state.markets:
                first = channel not in conn.sent_books
                sides = {
                    side: [
                        ["new" if first else ("delete" if a == 0 else "change"), p, a]
                        for p, a in book_diff(
                            conn, channel, side, self.state.levels(parts[1], side)
                        )
                    ]
                    for side in ("bids", "asks")
                }
                data = {
                    "type": "snapshot" if first else "change",
                    "timestamp": now_ms(),
                    "instrument_name": parts[1],
                    "change_id": now_ms(),
                    **sides,
                }
                conn.send(_notification(channel, data))

    def on_event(self, event: str, payload: Any) -> None:
        for conn in list(self.connections):
            for channel in conn.channels:
                if event == "order" and channel.startswith("user.orders."):
                    conn.send(_notification(channel, self._order(payload)))
                elif event == "trade" and channel.startswith("user.trades."):
                    conn.send(_notification(channel, [self._trade(payload)]))


def _notification(channel: str, data: Any) -> dict[str, Any]:
    return {
        "jsonrpc": "2.0",
        "method": "subscription",
        "params": {"channel": channel, "data": data},
    }
