"""Binance USD-M futures as ccxt's binanceusdm classes call it: fapi v1/v2/v3 REST (signed
requests accepted unchecked), market websocket streams (bookTicker, depth, markPrice, ticker)
behind SUBSCRIBE messages, and the user-data stream (/private/ws?listenKey=...) carrying
ORDER_TRADE_UPDATE and ACCOUNT_UPDATE."""

from __future__ import annotations

import contextlib
from typing import Any

from aiohttp import web

from tests.emulator.server import BaseEmulator, Connection, book_diff
from tests.emulator.state import ExchangeState, Market, Order, RejectError, Trade, now_ms

# Binance error codes as ccxt maps them (ccxt/async_support/binance.py `exceptions`).
_CODES = {
    "bad_symbol": (-1121, "Invalid symbol."),
    "bad_amount": (-4003, "Quantity less than or equal to zero."),
    "duplicate": (-4116, "ClientOrderId is duplicated."),
    "reduce_only": (-2022, "ReduceOnly Order is rejected."),
    "post_only": (
        -5022,
        "Due to the order could not be executed as maker, the Post Only order will be rejected.",
    ),
    "not_found": (-2013, "Order does not exist."),
    "not_open": (-2011, "Unknown order sent."),
}
_STATUS = {"open": "NEW", "filled": "FILLED", "cancelled": "CANCELED", "rejected": "REJECTED"}


def default_markets() -> list[Market]:
    return [
        Market(
            "BTCUSDT",
            "BTC",
            "USDT",
            "USDT",
            tick=0.1,
            step=0.001,
            min_amount=0.001,
            mark=60000.0,
            index=60000.0,
        ),
        Market(
            "ETHUSDT",
            "ETH",
            "USDT",
            "USDT",
            tick=0.01,
            step=0.001,
            min_amount=0.001,
            mark=3000.0,
            index=3000.0,
        ),
    ]


def _decimals(step: float) -> int:
    text = f"{step:.10f}".rstrip("0")
    return len(text.split(".")[1]) if "." in text else 0


class BinanceEmulator(BaseEmulator):
    def __init__(self, state: ExchangeState | None = None) -> None:
        super().__init__(state or ExchangeState(default_markets(), {"USDT": 100_000.0}))
        self.update_ids: dict[str, int] = {}
        # the account's modes, as the exchange reports them (tests switch them)
        self.dual_side_position = False
        self.margin_type = "cross"

    def config_urls(self) -> dict[str, str]:
        """AccountConfig.urls pointing ccxt's binanceusdm (demo mode or live) at the emulator."""
        fapi = f"{self.base_url}/fapi"
        return {
            "fapiPublic": f"{fapi}/v1",
            "fapiPublicV2": f"{fapi}/v2",
            "fapiPublicV3": f"{fapi}/v3",
            "fapiPrivate": f"{fapi}/v1",
            "fapiPrivateV2": f"{fapi}/v2",
            "fapiPrivateV3": f"{fapi}/v3",
            "ws.linear": f"{self.ws_base}/ws",
        }

    def add_routes(self, app: web.Application) -> None:
        for path in ("/ws", "/ws/{n}", "/{category}/ws", "/{category}/ws/{n}"):
            app.router.add_get(path, self._ws)
        app.router.add_route("*", "/fapi/{version}/{path:.*}", self._rest)

    # -- wire format ------------------------------------------------------------------------

    def _symbol_info(self, m: Market) -> dict[str, Any]:
        return {
            "symbol": m.id,
            "pair": m.id,
            "contractType": "PERPETUAL",
            "deliveryDate": 4133404800000,
            "onboardDate": 1569398400000,
            "status": "TRADING",
            "maintMarginPercent": "2.5000",
            "requiredMarginPercent": "5.0000",
            "baseAsset": m.base,
            "quoteAsset": m.quote,
            "marginAsset": m.settle,
            "pricePrecision": _decimals(m.tick),
            "quantityPrecision": _decimals(m.step),
            "baseAssetPrecision": 8,
            "quotePrecision": 8,
            "underlyingType": "COIN",
            "underlyingSubType": ["PoW"],
            "settlePlan": 0,
            "triggerProtect": "0.0500",
            "liquidationFee": "0.012500",
            "marketTakeBound": "0.05",
            "maxMoveOrderLimit": 10000,
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.10",
                    "maxPrice": "4529764",
                    "tickSize": str(m.tick),
                },
                {
                    "filterType": "LOT_SIZE",
                    "stepSize": str(m.step),
                    "maxQty": "1000",
                    "minQty": str(m.min_amount),
                },
                {
                    "filterType": "MARKET_LOT_SIZE",
                    "stepSize": str(m.step),
                    "maxQty": "120",
                    "minQty": str(m.min_amount),
                },
                {"filterType": "MAX_NUM_ORDERS", "limit": 200},
                {"filterType": "MAX_NUM_ALGO_ORDERS", "limit": 10},
                {"filterType": "MIN_NOTIONAL", "notional": "100"},
                {
                    "filterType": "PERCENT_PRICE",
                    "multiplierUp": "1.0500",
                    "multiplierDown": "0.9500",
                    "multiplierDecimal": "4",
                },
            ],
            "orderTypes": [
                "LIMIT",
                "MARKET",
                "STOP",
                "STOP_MARKET",
                "TAKE_PROFIT",
                "TAKE_PROFIT_MARKET",
                "TRAILING_STOP_MARKET",
            ],
            "timeInForce": ["GTC", "IOC", "FOK", "GTX", "GTD"],
            "permissionSets": ["GRID", "COPY"],
        }

    def _book_ticker(self, m: Market) -> dict[str, Any]:
        bid = self.state.best(m.id, "bids") or (0.0, 0.0)
        ask = self.state.best(m.id, "asks") or (0.0, 0.0)
        return {
            "symbol": m.id,
            "bidPrice": str(bid[0]),
            "bidQty": str(bid[1]),
            "askPrice": str(ask[0]),
            "askQty": str(ask[1]),
            "time": now_ms(),
            "lastUpdateId": self.update_ids.get(m.id, 1),
        }

    def _order(self, o: Order) -> dict[str, Any]:
        return {
            "orderId": int(o.id),
            "symbol": o.symbol,
            "status": _STATUS[o.status],
            "clientOrderId": o.client_id,
            "price": str(o.price),
            "avgPrice": str(o.average),
            "origQty": str(o.amount),
            "executedQty": str(o.filled),
            "cumQty": str(o.filled),
            "cumQuote": str(o.cost),
            "timeInForce": "GTX" if o.post_only else "GTC",
            "type": "LIMIT",
            "reduceOnly": o.reduce_only,
            "closePosition": False,
            "side": o.side.upper(),
            "positionSide": "BOTH",
            "stopPrice": "0",
            "workingType": "CONTRACT_PRICE",
            "priceProtect": False,
            "origType": "LIMIT",
            "priceMatch": "NONE",
            "selfTradePreventionMode": "NONE",
            "goodTillDate": 0,
            "updateTime": o.updated_ms,
            "time": o.created_ms,
        }

    def _user_trade(self, t: Trade) -> dict[str, Any]:
        o = t.order
        return {
            "buyer": o.side == "buy",
            "commission": str(t.fee),
            "commissionAsset": t.fee_currency,
            "id": int(t.id[1:]),
            "maker": t.maker,
            "orderId": int(o.id),
            "price": str(t.price),
            "qty": str(t.amount),
            "quoteQty": str(t.amount * t.price),
            "realizedPnl": "0",
            "side": o.side.upper(),
            "positionSide": "BOTH",
            "symbol": o.symbol,
            "time": t.ts,
        }

    def _position_risk(self, symbol: str) -> dict[str, Any]:
        m = self.state.markets[symbol]
        pos = self.state.positions.get(symbol)
        qty = pos.qty if pos else 0.0
        return {
            "symbol": symbol,
            "positionSide": "BOTH",
            "positionAmt": str(qty),
            "entryPrice": str(pos.entry if pos else 0.0),
            "breakEvenPrice": "0.0",
            "markPrice": str(m.mark),
            "unRealizedProfit": "0.0",
            "liquidationPrice": "0",
            "isolatedMargin": "0",
            "notional": str(qty * m.mark),
            "marginAsset": m.settle,
            "isolatedWallet": "0",
            "initialMargin": "0",
            "maintMargin": "0",
            "positionInitialMargin": "0",
            "openOrderInitialMargin": "0",
            "adl": 0,
            "bidNotional": "0",
            "askNotional": "0",
            "updateTime": now_ms(),
            "leverage": "20",
            "marginType": self.margin_type,
            "isolated": self.margin_type == "isolated",
            "maxNotionalValue": "1000000",
        }

    def _assets(self) -> list[dict[str, Any]]:
        return [
            {
                "asset": a,
                "walletBalance": str(b),
                "unrealizedProfit": "0",
                "marginBalance": str(b),
                "maintMargin": "0",
                "initialMargin": "0",
                "positionInitialMargin": "0",
                "openOrderInitialMargin": "0",
                "crossWalletBalance": str(b),
                "crossUnPnl": "0",
                "availableBalance": str(b),
                "maxWithdrawAmount": str(b),
                "marginAvailable": True,
                "updateTime": now_ms(),
                "balance": str(b),
            }
            for a, b in self.state.balances.items()
        ]

    # -- REST -------------------------------------------------------------------------------

    async def _rest(self, request: web.Request) -> web.StreamResponse:
        path = f"{request.method} {request.match_info['version']}/{request.match_info['path']}"
        params: dict[str, Any] = dict(request.query)
        if request.method in ("POST", "PUT", "DELETE") and request.can_read_body:
            params.update(dict(await request.post()))
        if path == "POST v1/order" and self.faults.hang_creates > 0:
            self.faults.hang_creates -= 1
            with contextlib.suppress(RejectError):
                self.call(path, params)
            await self.hang()
        try:
            return web.json_response(self.call(path, params))
        except RejectError as e:
            code, msg = _CODES.get(e.code, (-1000, e.message))
            return web.json_response({"code": code, "msg": msg}, status=400)
        except KeyError as e:
            return web.json_response({"code": -1000, "msg": f"not emulated: {e}"}, status=404)

    def call(self, path: str, p: dict[str, Any]) -> Any:
        st = self.state
        version, _, name = path.partition("/")
        if name == "time":
            return {"serverTime": now_ms()}
        if name == "exchangeInfo":
            return {
                "timezone": "UTC",
                "serverTime": now_ms(),
                "rateLimits": [],
                "exchangeFilters": [],
                "assets": [],
                "symbols": [self._symbol_info(m) for m in st.markets.values()],
            }
        if name == "ticker/bookTicker":
            if "symbol" in p:
                return self._book_ticker(self._market(p["symbol"]))
            return [self._book_ticker(m) for m in st.markets.values()]
        if name == "ticker/24hr":
            m = self._market(p["symbol"])
            bt = self._book_ticker(m)
            return {
                "symbol": m.id,
                "lastPrice": str(m.mark),
                "openPrice": str(m.mark),
                "highPrice": str(m.mark),
                "lowPrice": str(m.mark),
                "volume": "1000",
                "quoteVolume": "1",
                "priceChange": "0",
                "priceChangePercent": "0",
                "weightedAvgPrice": str(m.mark),
                "lastQty": "1",
                "openTime": now_ms(),
                "closeTime": now_ms(),
                "firstId": 1,
                "lastId": 2,
                "count": 2,
                "bidPrice": bt["bidPrice"],
                "askPrice": bt["askPrice"],
            }
        if name == "premiumIndex":
            m = self._market(p["symbol"])
            return {
                "symbol": m.id,
                "markPrice": str(m.mark),
                "indexPrice": str(m.index),
                "estimatedSettlePrice": str(m.index),
                "lastFundingRate": str(m.funding_8h),
                "interestRate": "0.0001",
                "nextFundingTime": now_ms() + 3600_000,
                "time": now_ms(),
            }
        if name == "depth":
            m = self._market(p["symbol"])
            limit = int(p.get("limit", 20))
            return {
                "lastUpdateId": self.update_ids.get(m.id, 1),
                "E": now_ms(),
                "T": now_ms(),
                "bids": [[str(a), str(b)] for a, b in st.levels(m.id, "bids", limit)],
                "asks": [[str(a), str(b)] for a, b in st.levels(m.id, "asks", limit)],
            }
        if name == "leverageBracket":
            return [
                {
                    "symbol": s,
                    "brackets": [
                        {
                            "bracket": 1,
                            "initialLeverage": 125,
                            "notionalCap": 50000,
                            "notionalFloor": 0,
                            "maintMarginRatio": 0.004,
                            "cum": 0.0,
                        }
                    ],
                }
                for s in st.markets
            ]
        if name == "positionSide/dual":
            return {"dualSidePosition": self.dual_side_position}
        if name == "symbolConfig":
            m = self._market(p["symbol"])
            margin = "CROSSED" if self.margin_type == "cross" else "ISOLATED"
            return [{"symbol": m.id, "marginType": margin, "isAutoAddMargin": "false"}]
        if name == "positionRisk":
            rows = [self._position_risk(s) for s in st.markets]
            if version == "v3":  # v3 lists open positions only
                rows = [r for r in rows if float(r["positionAmt"]) != 0]
            return rows
        if name == "account":
            total = sum(st.balances.values())
            return {
                "totalWalletBalance": str(total),
                "totalMarginBalance": str(total),
                "availableBalance": str(total),
                "totalUnrealizedProfit": "0",
                "totalInitialMargin": "0",
                "totalMaintMargin": "0",
                "maxWithdrawAmount": str(total),
                "assets": self._assets(),
                "positions": [self._position_risk(s) for s in st.markets],
            }
        if name == "balance":
            return [{"accountAlias": "emu", **a} for a in self._assets()]
        if name == "listenKey":
            return {"listenKey": "emulator-listen-key"}
        if name == "order":
            return self._order_call(path.split()[0], p)
        if name == "openOrders":
            return [
                self._order(o)
                for o in st.orders.values()
                if o.status == "open" and p.get("symbol", o.symbol) == o.symbol
            ]
        if name == "allOrders":
            return [self._order(o) for o in st.orders.values() if o.symbol == p.get("symbol")]
        if name == "userTrades":
            return [
                self._user_trade(t)
                for t in st.trades
                if t.order.symbol == p.get("symbol", t.order.symbol)
            ]
        raise KeyError(path)

    def _order_call(self, method: str, p: dict[str, Any]) -> Any:
        st = self.state
        if method == "POST":
            order = st.place(
                self._market(p["symbol"]).id,
                p["side"].lower(),
                float(p["quantity"]),
                float(p["price"]),
                p.get("newClientOrderId") or st.next_id("auto-"),
                reduce_only=str(p.get("reduceOnly")).lower() == "true",
                post_only=p.get("timeInForce") == "GTX",
            )
            return self._order(order)
        order = self._lookup(p)
        if method == "DELETE":
            return self._order(st.cancel(order.id))
        return self._order(order)

    def _lookup(self, p: dict[str, Any]) -> Order:
        if "origClientOrderId" in p:
            found = self.state.find_by_client_id(p["origClientOrderId"])
            if found:
                return found[0]
        elif "orderId" in p and p["orderId"] in self.state.orders:
            return self.state.orders[p["orderId"]]
        raise RejectError("not_found", "order does not exist")

    def _market(self, symbol: str) -> Market:
        m = self.state.markets.get(symbol)
        if m is None:
            raise RejectError("bad_symbol", symbol)
        return m

    # -- websockets -------------------------------------------------------------------------

    async def _ws(self, request: web.Request) -> web.StreamResponse:
        key = request.query.get("listenKey")
        return await self.serve_ws(request, self._on_ws_message, listen_key=key)

    def _on_ws_message(self, conn: Connection, msg: dict[str, Any]) -> None:
        method = msg.get("method")
        streams = [str(s) for s in msg.get("params") or []]
        if method == "SUBSCRIBE":
            conn.channels.update(streams)
        elif method == "UNSUBSCRIBE":
            conn.channels.difference_update(streams)
        conn.send({"result": None, "id": msg.get("id")})

    def publish_market(self, conn: Connection) -> None:
        bumped: set[str] = set()
        for stream in list(conn.channels):
            sym_lower, _, channel = stream.partition("@")
            m = self.state.markets.get(sym_lower.upper())
            if m is None:
                continue
            ts = now_ms()
            if channel.startswith("bookTicker"):
                bt = self._book_ticker(m)
                conn.send(
                    {
                        "e": "bookTicker",
                        "u": bt["lastUpdateId"],
                        "s": m.id,
                        "E": ts,
                        "T": ts,
                        "b": bt["bidPrice"],
                        "B": bt["bidQty"],
                        "a": bt["askPrice"],
                        "A": bt["askQty"],
                    }
                )
            elif channel.startswith("depth"):
                # Diff depth: absolute amounts, 0 deletes; ids chain through `pu`.
                if m.id not in bumped:
                    bumped.add(m.id)
                prev = self.update_ids.get(m.id, 1)
                self.update_ids[m.id] = prev + 1
                changes = {
                    side: [
                        [str(p), str(a)]
                        for p, a in book_diff(
                            conn, stream, side, self.state.levels(m.id, side, 1000)
                        )
                    ]
                    for side in ("bids", "asks")
                }
                conn.send(
                    {
                        "e": "depthUpdate",
                        "E": ts,
                        "T": ts,
                        "s": m.id,
                        "U": prev + 1,
                        "u": prev + 1,
                        "pu": prev,
                        "b": changes["bids"],
                        "a": changes["asks"],
                    }
                )
            elif channel.startswith("markPrice"):
                conn.send(
                    {
                        "e": "markPriceUpdate",
                        "E": ts,
                        "s": m.id,
                        "p": str(m.mark),
                        "i": str(m.index),
                        "P": str(m.index),
                        "r": "0.0001",
                        "T": ts + 3600_000,
                    }
                )
            elif channel == "ticker":
                conn.send(
                    {
                        "e": "24hrTicker",
                        "E": ts,
                        "s": m.id,
                        "p": "0",
                        "P": "0",
                        "w": str(m.mark),
                        "c": str(m.mark),
                        "Q": "1",
                        "o": str(m.mark),
                        "h": str(m.mark),
                        "l": str(m.mark),
                        "v": "1000",
                        "q": "1",
                        "O": ts,
                        "C": ts,
                        "F": 1,
                        "L": 2,
                        "n": 2,
                    }
                )

    def on_event(self, event: str, payload: Any) -> None:
        private = [c for c in self.connections if c.listen_key]
        if not private:
            return
        ts = now_ms()
        msg: dict[str, Any] | None = None
        if event == "order":
            msg = {"e": "ORDER_TRADE_UPDATE", "E": ts, "T": ts, "o": self._ws_order(payload, None)}
        elif event == "trade":
            msg = {
                "e": "ORDER_TRADE_UPDATE",
                "E": ts,
                "T": ts,
                "o": self._ws_order(payload.order, payload),
            }
        elif event == "position":
            msg = self._account_update(payload, ts)
        if msg is not None:
            for conn in private:
                conn.send(msg)

    def _ws_order(self, o: Order, t: Trade | None) -> dict[str, Any]:
        return {
            "s": o.symbol,
            "c": o.client_id,
            "S": o.side.upper(),
            "o": "LIMIT",
            "f": "GTX" if o.post_only else "GTC",
            "q": str(o.amount),
            "p": str(o.price),
            "ap": str(o.average),
            "sp": "0",
            "x": "TRADE" if t else ("CANCELED" if o.status == "cancelled" else "NEW"),
            "X": _STATUS[o.status] if not (o.status == "open" and o.filled) else "PARTIALLY_FILLED",
            "i": int(o.id),
            "l": str(t.amount if t else 0),
            "z": str(o.filled),
            "L": str(t.price if t else 0),
            "N": t.fee_currency if t else "USDT",
            "n": str(t.fee if t else 0),
            "T": t.ts if t else o.updated_ms,
            "t": int(t.id[1:]) if t else 0,
            "b": "0",
            "a": "0",
            "m": bool(t and t.maker),
            "R": o.reduce_only,
            "wt": "CONTRACT_PRICE",
            "ot": "LIMIT",
            "ps": "BOTH",
            "cp": False,
            "rp": "0",
            "pP": False,
            "si": 0,
            "ss": 0,
            "V": "NONE",
            "pm": "NONE",
            "gtd": 0,
        }

    def _account_update(self, symbol: str, ts: int) -> dict[str, Any]:
        pos = self.state.positions.get(symbol)
        qty = self.faults.stream_position.get(symbol, pos.qty if pos else 0.0)
        m = self.state.markets[symbol]
        balance = self.state.balances.get(m.settle, 0.0)
        return {
            "e": "ACCOUNT_UPDATE",
            "E": ts,
            "T": ts,
            "a": {
                "m": "ORDER",
                "B": [{"a": m.settle, "wb": str(balance), "cw": str(balance), "bc": "0"}],
                "P": [
                    {
                        "s": symbol,
                        "pa": str(qty),
                        "ep": str(pos.entry if pos else 0.0),
                        "bep": "0",
                        "cr": "0",
                        "up": "0",
                        "mt": "cross",
                        "iw": "0",
                        "ps": "BOTH",
                        "ma": m.settle,
                    }
                ],
            },
        }
