"""Paper trading on a real exchange: live public market data, simulated fills.

`PaperVenue` takes instruments, tickers and order books from a keyless `CcxtVenue` (mode
"paper") and fills orders against the live order book with the simulated exchange's own code:
`sim.book.order_problem` refuses what the simulator refuses, `sim.book.match` walks the book,
`sim.book.fee` prices the fee and `sim.ledger.Ledger` books positions and cash. Nothing is ever
sent to the exchange: the market-data venue has no keys and refuses order calls by itself.

How fills are simulated (and how that differs from the real venue):
- A marketable order walks the freshest book we hold (the streamed one if younger than
  `book_max_age_s`, else one fetched by REST) and fills at once, as a taker. The liquidity it
  took stays out of our copy of the book until the next live book replaces it: our own orders
  never move the real market.
- What does not fill rests at its limit. It fills, whole and as a maker at its own price, as
  soon as a live book trades through it (the simulated exchange's rule). While orders rest, a
  task per symbol keeps a book stream open so they are matched even if nobody else watches.
- Positions start from the config's `positions` for this account (each must name a `symbol`
  the exchange lists) at the live mark, without fee; balances from `paper_balances`.
- State lives in memory: a restart starts again from the config.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import Callable, Mapping, Sequence
from typing import Protocol

import structlog

from bot.clock import Clock
from bot.config import ConfigError
from bot.config_sim import PositionConfig
from bot.core.instruments import Instrument
from bot.core.market import BookLevel, FundingRate, OrderBook, Ticker
from bot.core.orders import Fill, OrderRequest, OrderStatus, OrderUpdate, PositionReport
from bot.venues.base import VenueNotSupported, VenueRejected, VenueTransient
from bot.venues.sim import book as bk
from bot.venues.sim.ledger import Ledger
from bot.venues.sim.records import SimOrder
from bot.venues.sim.streams import Signal, Updates

log = structlog.get_logger(__name__)

RESTING_WATCH_TIMEOUT_S = 30.0  # one bounded await of the resting-order book stream
RESTING_RETRY_S = 1.0  # pause after a failed book read before trying again


class MarketData(Protocol):
    """The public half of a venue (CcxtVenue in paper mode)."""

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def load_instruments(self) -> Mapping[str, Instrument]: ...

    async def watch_ticker(self, symbol: str) -> Ticker: ...

    async def watch_order_book(self, symbol: str) -> OrderBook: ...

    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_order_book(self, symbol: str) -> OrderBook: ...

    async def fetch_funding_rate(self, symbol: str) -> FundingRate: ...


class PaperVenue:
    mode = "paper"

    def __init__(
        self,
        name: str,
        market: MarketData,
        positions: Sequence[PositionConfig],
        balances: Mapping[str, float],
        clock: Clock,
        *,
        book_max_age_s: float = 5.0,
    ) -> None:
        self.name = name
        self.market = market
        self._start_positions = list(positions)
        self._clock = clock
        self._book_max_age_ms = int(book_max_age_s * 1000)
        # Currencies upper case, however the config or environment spelled them.
        self.ledger = Ledger(balances={c.upper(): v for c, v in balances.items()})
        self.instruments: dict[str, Instrument] = {}
        self.orders: dict[str, SimOrder] = {}  # by client id
        self.fills_by_order: dict[str, list[Fill]] = {}
        # symbol -> (book, clock ms when we got it); our fills take liquidity out of this copy
        self._books: dict[str, tuple[OrderBook, int]] = {}
        self._index: dict[str, float] = {}  # underlying -> last index (or mid) seen
        self._ids = itertools.count(1)
        # Before every order (and so trade) id: this start's time, so a restart never hands out
        # an id of the run before (as the simulated exchange's, sim/exchange.py Saved.id_prefix).
        self._id_prefix = f"{clock.now_ms()}-"
        self._orders_out: Updates[OrderUpdate] = Updates()
        self._fills_out: Updates[Fill] = Updates()
        self._positions_out: Updates[PositionReport] = Updates()
        self._wake = {s: Signal() for s in ("orders", "fills", "positions")}
        self._resting_tasks: dict[str, asyncio.Task[None]] = {}
        self._closed = False

    # -- lifecycle --------------------------------------------------------------------------

    async def connect(self) -> None:
        self._closed = False
        await self.market.connect()
        self.instruments = dict(await self.market.load_instruments())
        for pos in self._start_positions:
            inst = self.instruments.get(pos.symbol or "")
            if inst is None:
                raise ConfigError(
                    "positions",
                    [
                        (
                            f"positions[account={self.name}].symbol",
                            repr(pos.symbol),
                            "paper accounts on a real exchange need a symbol the exchange lists",
                        )
                    ],
                )
            ticker = await self.fetch_ticker(inst.symbol)
            price = ticker.mark or ticker.mid or 0.0
            self.ledger.trade(inst, pos.qty, price, 0.0)
        log.info(
            "paper.connected",
            account=self.name,
            instruments=len(self.instruments),
            positions={s: p.qty for s, p in self.ledger.positions.items()},
        )

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._resting_tasks.values())
        self._resting_tasks.clear()
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        for signal in self._wake.values():
            signal.fire()
        await self.market.close()

    async def load_instruments(self) -> Mapping[str, Instrument]:
        return dict(self.instruments)

    # -- market data (live) -----------------------------------------------------------------

    def _note_ticker(self, ticker: Ticker) -> Ticker:
        inst = self.instruments.get(ticker.symbol)
        price = ticker.index if ticker.index is not None else ticker.mid
        if inst is not None and price is not None and price > 0:
            self._index[inst.underlying] = price
        return ticker

    async def watch_ticker(self, symbol: str) -> Ticker:
        return self._note_ticker(await self.market.watch_ticker(symbol))

    async def fetch_ticker(self, symbol: str) -> Ticker:
        return self._note_ticker(await self.market.fetch_ticker(symbol))

    async def watch_order_book(self, symbol: str) -> OrderBook:
        return self._on_book(await self.market.watch_order_book(symbol))

    async def fetch_order_book(self, symbol: str) -> OrderBook:
        return self._on_book(await self.market.fetch_order_book(symbol))

    async def fetch_funding_rate(self, symbol: str) -> FundingRate:
        return await self.market.fetch_funding_rate(symbol)  # public data: the live rate

    def _on_book(self, book: OrderBook) -> OrderBook:
        """A new live book replaces our copy and fills the resting orders it trades through."""
        self._books[book.symbol] = (book, self._clock.now_ms())
        inst = self.instruments.get(book.symbol)
        if inst is not None and inst.underlying not in self._index and book.mid is not None:
            self._index[inst.underlying] = book.mid
        for order in list(self.orders.values()):
            r = order.request
            crossed = r.symbol == book.symbol and bk.would_cross(book, r.side, r.price)
            if order.is_open and order.resting > 0 and crossed:
                # The market traded through the order: it fills at its own price, as maker.
                legs = (BookLevel(r.price, order.resting),)
                order.resting = 0.0
                self._deliver(order, legs, maker=True)
        return book

    async def _fresh_book(self, symbol: str) -> OrderBook:
        held = self._books.get(symbol)
        if held is not None and self._clock.now_ms() - held[1] <= self._book_max_age_ms:
            return held[0]
        return await self.fetch_order_book(symbol)

    # -- account reads ----------------------------------------------------------------------

    async def fetch_positions(self) -> Sequence[PositionReport]:
        now = self._clock.now_ms()
        return [
            PositionReport(s, p.qty, now, source=f"{self.name}:paper")
            for s, p in self.ledger.positions.items()
        ]

    async def fetch_balances(self) -> Mapping[str, float]:
        return dict(self.ledger.balances)

    async def fetch_open_orders(self) -> Sequence[OrderUpdate]:
        return [o.update() for o in self.orders.values() if o.is_open]

    async def fetch_order(self, client_id: str, symbol: str) -> OrderUpdate | None:
        order = self.orders.get(client_id)
        return order.update() if order is not None else None

    async def fetch_fills(self, client_id: str, symbol: str) -> Sequence[Fill]:
        return list(self.fills_by_order.get(client_id, ()))

    # -- account streams (ours: the simulated account's updates) ----------------------------

    async def _wait(self, stream: str, ready: Callable[[], bool]) -> None:
        while not ready():
            if self._closed:
                raise VenueTransient("paper venue closed")
            await self._wake[stream].wait()

    async def watch_orders(self) -> Sequence[OrderUpdate]:
        await self._wait("orders", lambda: len(self._orders_out) > 0)
        return self._orders_out.take()

    async def watch_fills(self) -> Sequence[Fill]:
        await self._wait("fills", lambda: len(self._fills_out) > 0)
        return self._fills_out.take()

    async def watch_positions(self) -> Sequence[PositionReport]:
        await self._wait("positions", lambda: len(self._positions_out) > 0)
        return self._positions_out.take()

    def _publish_order(self, order: SimOrder) -> None:
        self._orders_out.push([order.update()])
        self._wake["orders"].fire()

    # -- orders -----------------------------------------------------------------------------

    async def create_order(self, request: OrderRequest) -> OrderUpdate:
        if request.client_id in self.orders:
            # As real venues do: a resent client id is refused, the first order is untouched.
            raise VenueRejected("duplicate client order id")
        inst = self.instruments.get(request.symbol)
        if inst is None:
            raise VenueRejected(f"unknown symbol {request.symbol}")
        book = await self._fresh_book(request.symbol)
        now = self._clock.now_ms()
        index = self._index.get(inst.underlying) or book.mid or request.price
        order = SimOrder(
            request=request,
            venue_order_id=f"paper-{self._id_prefix}{next(self._ids)}",
            ts_ms=now,
            status=OrderStatus.OPEN,
        )
        self.orders[request.client_id] = order
        reason = bk.order_problem(inst, request, book, self.ledger.qty(request.symbol), index)
        if reason is not None:
            order.status, order.reason = OrderStatus.REJECTED, reason
            self._publish_order(order)
            log.info("paper.order_rejected", client_id=request.client_id, reason=reason)
            raise VenueRejected(reason)
        if request.post_only:
            order.resting = request.amount
        else:
            m = bk.match(book, request.side, request.amount, request.price, inst.amount_step)
            # until the next live book, the liquidity we took is gone from our copy
            self._books[request.symbol] = (m.book, self._books[request.symbol][1])
            order.resting = round(request.amount - m.filled, 12)
            if m.fills:
                self._deliver(order, m.fills, maker=False)
        if order.resting > 0:
            self._ensure_resting_watch(request.symbol)
        order.refresh_status()
        self._publish_order(order)
        log.info(
            "paper.order_created",
            account=self.name,
            client_id=request.client_id,
            symbol=request.symbol,
            side=request.side.value,
            amount=request.amount,
            price=request.price,
            filled=order.filled,
            status=order.status.value,
        )
        return order.update()

    async def cancel_order(self, client_id: str, symbol: str) -> OrderUpdate | None:
        order = self.orders.get(client_id)
        if order is None:
            return None
        if order.is_open:
            order.close(OrderStatus.CANCELLED, "cancelled", self._clock.now_ms())
            self._publish_order(order)
        return order.update()

    def _deliver(self, order: SimOrder, legs: Sequence[BookLevel], maker: bool) -> None:
        """Book matched legs: fee, ledger, fill records and the three account streams."""
        r = order.request
        inst = self.instruments[r.symbol]
        now = self._clock.now_ms()
        index = self._index.get(inst.underlying) or legs[0].price
        fills: list[Fill] = []
        for leg in legs:
            trade_id = f"{order.venue_order_id}-{len(fills) + 1}-{int(maker)}"
            fills.append(self.ledger.fill_leg(inst, order, leg, index, maker, trade_id, now))
        self.fills_by_order.setdefault(r.client_id, []).extend(fills)
        order.ts_ms = now
        order.refresh_status()
        self._fills_out.push(fills)
        self._positions_out.push(
            [PositionReport(r.symbol, self.ledger.qty(r.symbol), now, f"{self.name}:paper")]
        )
        self._wake["fills"].fire()
        self._wake["positions"].fire()
        if maker:  # a taker fill is published with the create's own update
            self._publish_order(order)

    def _ensure_resting_watch(self, symbol: str) -> None:
        task = self._resting_tasks.get(symbol)
        if task is None or task.done():
            self._resting_tasks[symbol] = asyncio.create_task(
                self._watch_resting(symbol), name=f"paper-resting-{self.name}-{symbol}"
            )

    async def _watch_resting(self, symbol: str) -> None:
        """Keeps the live book coming while orders rest on `symbol`; every await is bounded."""
        while not self._closed and any(
            o.is_open and o.resting > 0 and o.request.symbol == symbol for o in self.orders.values()
        ):
            try:
                await asyncio.wait_for(self.watch_order_book(symbol), RESTING_WATCH_TIMEOUT_S)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, VenueTransient, VenueNotSupported) as e:
                log.warning("paper.book_watch_failed", symbol=symbol, error=repr(e))
                await self._clock.sleep(RESTING_RETRY_S)
            except Exception as e:  # a bad book must not leave orders unmatched forever
                log.exception("paper.book_watch_error", symbol=symbol, error=repr(e))
                await self._clock.sleep(RESTING_RETRY_S)


__all__ = ["MarketData", "PaperVenue"]
