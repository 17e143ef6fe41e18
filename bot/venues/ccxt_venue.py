"""A real exchange behind the Venue interface, through ccxt.pro (async REST + websockets).

Modes (AccountConfig.mode):
- paper: public market data only, no keys; order calls raise VenueNotSupported (the simulated
  exchange fills paper orders against this venue's books).
- testnet: the exchange's test system: `set_sandbox_mode(True)`, except Binance USD-M, whose
  sandbox refuses private calls: `enable_demo_trading(True)` there.
- live: real orders; the config has already insisted on keys and `confirm_live`.

Building the exchange object (modes, URL overrides) is in ccxt_setup; finding orders the way
each exchange allows is in ccxt_lookup. Amounts: the core counts
book contracts; create_order scales them to the exchange's amount unit and every amount read
back (orders, fills, positions, book depth) is scaled the other way (see ccxt_profiles).

Reads are retried here with exponential backoff and jitter on VenueTransient; creates are never
retried here (a retry must reuse the client id and is the executor's decision).
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable, Collection, Mapping, Sequence
from typing import Any, TypeVar

import ccxt
import structlog

from bot.clock import real_sleep, wall_ms
from bot.config_accounts import AccountConfig
from bot.core.instruments import Instrument
from bot.core.market import FundingRate, OrderBook, Ticker
from bot.core.orders import Fill, OrderRequest, OrderUpdate, PositionReport
from bot.venues import ccxt_convert as convert
from bot.venues.base import (
    VenueNotSupported,
    VenueRejected,
    VenueTransient,
)
from bot.venues.ccxt_lookup import find_order_raw, open_orders_raw
from bot.venues.ccxt_markets import Problem, map_markets
from bot.venues.ccxt_modes import check_modes
from bot.venues.ccxt_profiles import profile_for
from bot.venues.ccxt_setup import build_exchange, check_required

log = structlog.get_logger(__name__)

T = TypeVar("T")

BOOK_DEPTH = 20


def _now_ms() -> int:
    return wall_ms()


class CcxtVenue:
    """One exchange account. `exchange` may be injected (tests); otherwise built from config.
    `required`: symbols the config uses; an implausible market among them stops the start."""

    def __init__(
        self,
        name: str,
        config: AccountConfig,
        *,
        exchange: Any | None = None,
        clock: Callable[[], int] = _now_ms,
        rng: random.Random | None = None,
        required: Collection[str] = (),
    ) -> None:
        self.name = name
        self.config = config
        self.exchange: Any = exchange if exchange is not None else build_exchange(config)
        self.exchange_id: str = str(self.exchange.id)
        self.profile = profile_for(self.exchange_id)
        self.balance_basis = self.profile.balance_total
        self.required = frozenset(required)
        self._clock = clock
        self._rng = rng or random.Random()
        self._instruments: dict[str, Instrument] = {}
        # venue amount units per book contract, by symbol (see ccxt_profiles)
        self._per_contract: dict[str, float] = {}
        self.refused: dict[str, list[Problem]] = {}
        # venue order id -> our client id, for payloads that do not echo the client id.
        self._client_ids: dict[str, str] = {}

    # -- lifecycle -------------------------------------------------------------------------

    @property
    def mode(self) -> str:
        return self.config.mode

    async def connect(self) -> None:
        log_fn = log.warning if self.mode == "live" else log.info
        log_fn(
            "venue.connect",
            account=self.name,
            exchange=self.exchange_id,
            mode=self.mode,
            live_orders=self.mode == "live",
        )
        await self.load_instruments()
        await check_modes(self, self.required)  # position/margin mode against the config

    async def close(self) -> None:
        await self.exchange.close()

    async def load_instruments(self) -> Mapping[str, Instrument]:
        markets = await self._read("load_markets", self.exchange.load_markets)
        mapped = map_markets(markets.values(), int(self.exchange.precisionMode), self.exchange_id)
        self._instruments = mapped.instruments
        self._per_contract = mapped.venue_per_contract
        self.refused = mapped.refused
        if mapped.refused:
            log.info(
                "venue.markets_refused",
                account=self.name,
                n=len(mapped.refused),
                first=sorted(mapped.refused)[:10],
            )
        await check_required(self, self.required)
        return dict(self._instruments)

    def listed(self, symbol: str) -> Instrument | None:
        return self._instruments.get(symbol)

    def has(self, feature: str) -> bool:
        return bool(self.exchange.has.get(feature))

    def reset_streams(self) -> int:
        """Fail every open websocket as a network error would: pending watches are rejected
        with NetworkError (never cancelled, which would look like our own shutdown) and the
        next watch opens a fresh connection and resubscribes. For a stream that went silent
        while its socket still answers pings. Returns how many sockets were reset."""
        clients = list((getattr(self.exchange, "clients", None) or {}).values())
        for client in clients:
            client.on_error(ccxt.NetworkError(f"{self.name}: stream reset by hedgebot"))
        log.warning("venue.streams_reset", account=self.name, sockets=len(clients))
        return len(clients)

    # -- plumbing --------------------------------------------------------------------------

    async def _read(self, what: str, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Call a read, retrying VenueTransient with exponential backoff and full jitter."""
        attempts = self.config.read_attempts
        for attempt in range(1, attempts + 1):
            try:
                return await fn(*args)
            except Exception as e:  # ccxt raises its own tree; classify() maps it
                err = convert.classify(e)
                if not isinstance(err, VenueTransient) or attempt == attempts:
                    raise err from e
                cap = min(self.config.retry_max_s, self.config.retry_base_s * 2 ** (attempt - 1))
                delay = cap / 2 + self._rng.uniform(0, cap / 2)
                log.warning(
                    "venue.retry",
                    account=self.name,
                    call=what,
                    attempt=attempt,
                    delay_s=round(delay, 3),
                    error=str(err),
                )
                await real_sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    async def _stream(self, fn: Callable[..., Awaitable[T]], *args: Any) -> T:
        """A watch call: errors classified, never retried here (the caller resubscribes by
        calling again, which is also what makes ccxt reconnect a dropped socket)."""
        try:
            return await fn(*args)
        except Exception as e:
            raise convert.classify(e) from e

    def _require(self, feature: str) -> None:
        if not self.has(feature):
            raise VenueNotSupported(f"{self.exchange_id} has no {feature}")

    def _require_trading(self) -> None:
        if self.mode == "paper":
            raise VenueNotSupported(f"{self.name}: paper accounts send no orders to the venue")

    def _remember(self, update: OrderUpdate | None) -> OrderUpdate | None:
        if update is not None and update.venue_order_id:
            self._client_ids[update.venue_order_id] = update.client_id
        return update

    def per_contract(self, symbol: str) -> float:
        """Venue amount units per book contract (1 until the markets are loaded)."""
        return self._per_contract.get(symbol, 1.0)

    def _order(self, raw: Mapping[str, Any], client_id: str | None = None) -> OrderUpdate | None:
        cid = client_id or convert.client_id_of(raw) or self._client_ids.get(str(raw.get("id")))
        scale = self.per_contract(str(raw.get("symbol")))
        return self._remember(convert.order_update(raw, self._clock(), cid, scale))

    def _fill(self, raw: Mapping[str, Any], client_id: str | None = None) -> Fill | None:
        cid = client_id or convert.client_id_of(raw) or self._client_ids.get(str(raw.get("order")))
        return convert.fill(raw, self._clock(), cid, self.per_contract(str(raw.get("symbol"))))

    def _ticker(self, raw: Mapping[str, Any]) -> Ticker:
        instrument = self._instruments.get(str(raw.get("symbol")))
        return convert.ticker(raw, self._clock(), instrument, self.exchange_id)

    # -- streams ---------------------------------------------------------------------------

    async def watch_ticker(self, symbol: str) -> Ticker:
        if self.profile.top_of_book_stream:
            # Binance's ticker stream is a 24h statistic; the top of book is bookTicker.
            tickers = await self._stream(self.exchange.watch_bids_asks, [symbol])
            return self._ticker(tickers[symbol])
        return self._ticker(await self._stream(self.exchange.watch_ticker, symbol))

    async def watch_order_book(self, symbol: str) -> OrderBook:
        book = await self._stream(self.exchange.watch_order_book, symbol)
        # Copy now: the cached book is mutated in place by the next message.
        return convert.order_book(book, self._clock(), BOOK_DEPTH, self.per_contract(symbol))

    async def watch_orders(self) -> Sequence[OrderUpdate]:
        self._require("watchOrders")
        raws = await self._stream(self.exchange.watch_orders)
        return [u for u in (self._order(r) for r in list(raws)) if u is not None]

    async def watch_fills(self) -> Sequence[Fill]:
        self._require("watchMyTrades")
        raws = await self._stream(self.exchange.watch_my_trades)
        return [f for f in (self._fill(r) for r in list(raws)) if f is not None]

    async def watch_positions(self) -> Sequence[PositionReport]:
        self._require("watchPositions")
        raws = await self._stream(self.exchange.watch_positions)
        return convert.positions(
            list(raws), self._clock(), f"{self.name}:stream", self.per_contract
        )

    # -- reads -----------------------------------------------------------------------------

    async def fetch_ticker(self, symbol: str) -> Ticker:
        return self._ticker(await self._read("fetch_ticker", self.exchange.fetch_ticker, symbol))

    async def fetch_order_book(self, symbol: str) -> OrderBook:
        book = await self._read(
            "fetch_order_book", self.exchange.fetch_order_book, symbol, BOOK_DEPTH
        )
        return convert.order_book(book, self._clock(), BOOK_DEPTH, self.per_contract(symbol))

    async def fetch_funding_rate(self, symbol: str) -> FundingRate:
        raw = await self._read("fetch_funding_rate", self.exchange.fetch_funding_rate, symbol)
        return convert.funding_rate(raw, wall_ms())

    async def fetch_positions(self) -> Sequence[PositionReport]:
        self._require("fetchPositions")
        raws = await self._read("fetch_positions", self.exchange.fetch_positions)
        return convert.positions(raws, self._clock(), f"{self.name}:rest", self.per_contract)

    async def fetch_balances(self) -> Mapping[str, float]:
        return convert.balances(await self._read("fetch_balance", self.exchange.fetch_balance))

    async def fetch_open_orders(self) -> Sequence[OrderUpdate]:
        raws = await self._read(
            "fetch_open_orders",
            open_orders_raw,
            self.exchange,
            self.profile,
            self._instruments,
            None,
        )
        return [u for u in (self._order(r) for r in raws) if u is not None]

    async def fetch_order(self, client_id: str, symbol: str) -> OrderUpdate | None:
        raw = await self._read(
            "fetch_order",
            find_order_raw,
            self.exchange,
            self.profile,
            self.name,
            client_id,
            symbol,
        )
        return self._order(raw, client_id) if raw is not None else None

    async def fetch_fills(self, client_id: str, symbol: str) -> Sequence[Fill]:
        order = await self.fetch_order(client_id, symbol)
        if order is None or order.venue_order_id is None:
            return []
        raws = await self._read("fetch_my_trades", self.exchange.fetch_my_trades, symbol)
        mine = [r for r in raws if str(r.get("order")) == order.venue_order_id]
        return [f for f in (self._fill(r, client_id) for r in mine) if f]

    # -- orders ----------------------------------------------------------------------------

    def _order_params(self, request: OrderRequest) -> dict[str, Any]:
        params: dict[str, Any] = {self.profile.client_id_param: request.client_id}
        if request.reduce_only:
            params["reduceOnly"] = True
        if request.post_only:
            params["postOnly"] = True
        return params

    async def create_order(self, request: OrderRequest) -> OrderUpdate:
        self._require_trading()
        ex = self.exchange
        try:
            amount = self.venue_amount(request.symbol, request.amount)
            price = float(ex.price_to_precision(request.symbol, request.price))
        except Exception as e:
            raise convert.classify(e) from e
        log.info(
            "venue.create_order",
            account=self.name,
            client_id=request.client_id,
            symbol=request.symbol,
            side=str(request.side),
            contracts=request.amount,
            venue_amount=amount,
            price=price,
            reduce_only=request.reduce_only,
        )
        try:
            raw = await ex.create_order(
                request.symbol,
                "limit",
                str(request.side),
                amount,
                price,
                self._order_params(request),
            )
        except Exception as e:
            err = convert.classify(e, creating=True)
            log.warning(
                "venue.create_failed",
                account=self.name,
                client_id=request.client_id,
                kind=type(err).__name__,
                error=str(err),
            )
            raise err from e
        merged = {"symbol": request.symbol, "side": str(request.side), "amount": amount}
        merged.update({k: v for k, v in raw.items() if v is not None})
        update = self._order(merged, request.client_id)
        if update is None:  # pragma: no cover - ccxt always returns side and symbol
            raise VenueRejected(f"{self.name}: unreadable create response")
        return update

    def venue_amount(self, symbol: str, contracts: float) -> float:
        """The amount ccxt sends for `contracts` book contracts: scaled to the venue's unit, then
        truncated to the market's step by ccxt (a zero amount raises InvalidOrder)."""
        scaled = convert.to_venue_amount(contracts, self.per_contract(symbol))
        return float(self.exchange.amount_to_precision(symbol, scaled))

    async def cancel_order(self, client_id: str, symbol: str) -> OrderUpdate | None:
        self._require_trading()
        order = await self.fetch_order(client_id, symbol)
        if order is None or order.status.is_terminal:
            return order
        try:
            raw = await self._read(
                "cancel_order", self.exchange.cancel_order, order.venue_order_id, symbol
            )
        except VenueRejected:
            # Filled or cancelled between our look-up and the cancel: report what it became.
            return await self.fetch_order(client_id, symbol)
        update = self._order(raw, client_id)
        if update is None or not update.status.is_terminal:
            # Some venues answer a cancel with a bare acknowledgement: read the final state.
            return await self.fetch_order(client_id, symbol)
        return update
