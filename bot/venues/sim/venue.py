"""SimVenue: the simulated exchange behind the Venue interface (paper trading, drills, backtests).

The venue runs its own market: `connect()` starts a task that ticks the exchange every `tick_ms`
of clock time; `close()` stops it. Orders wait `latency_ms` of clock time. With
`SimConfig.state_file` set, the whole exchange is saved after every order, fill or cancel (and
at most once a second for price ticks alone) and restored by `connect()`, so a daemon killed
with SIGKILL resumes the same exchange with its orders still findable by client id.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import structlog

from bot.clock import Clock, monotonic_s
from bot.config_sim import PositionConfig, SimConfig
from bot.core.instruments import Instrument, Kind
from bot.core.market import FundingRate, OrderBook, Ticker
from bot.core.orders import Fill, OrderRequest, OrderStatus, OrderUpdate, PositionReport
from bot.venues.base import (
    VenueAmbiguous,
    VenueError,
    VenueRejected,
    VenueTransient,
)
from bot.venues.sim import state
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.faults import CreateFault, Faults
from bot.venues.sim.records import Changes, Refused
from bot.venues.sim.streams import STREAMS, Signal, Updates

log = structlog.get_logger(__name__)

TICK_SAVE_INTERVAL_S = 1.0  # real seconds between saves for price ticks alone


class SimVenue:
    def __init__(
        self,
        name: str,
        cfg: SimConfig,
        positions: Sequence[PositionConfig],
        clock: Clock,
        *,
        run_market: bool = True,
    ) -> None:
        """`positions` are this account's starting positions. With `run_market=False` nothing
        ticks by itself: the owner calls `tick()` (backtests, step-by-step tests)."""
        self.name = name
        self._cfg = cfg
        self._positions = list(positions)
        self._clock = clock
        self._run_market = run_market
        start = clock.now_ms()  # before every id: unique across restarts (Saved.id_prefix)
        self.exchange = SimExchange.create(cfg, self._positions, start, f"{start}-")
        self._faults = Faults(
            hide_new_ms=cfg.hide_new_orders_ms, unreachable_next=cfg.unreachable_orders
        )
        self._wake: dict[str, Signal] = {s: Signal() for s in STREAMS}
        self._tick_no = 0
        self._orders: Updates[OrderUpdate] = Updates()
        self._fills: Updates[Fill] = Updates()
        self._positions_out: Updates[PositionReport] = Updates()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        self._last_save = float("-inf")

    # -- lifecycle --------------------------------------------------------------------------

    async def connect(self) -> None:
        self._closed = False
        path = self._cfg.state_file
        saved = state.read(path) if path is not None else None
        if saved is not None:
            self.exchange = state.exchange_from_json(self._cfg, saved, self._positions)
            log.info(
                "sim.state_restored",
                account=self.name,
                path=str(path),
                saved_ms=saved["clock_ms"],
                orders=len(self.exchange.orders),
                fills=len(self.exchange.fills),
            )
            now = self._clock.now_ms()
            if now < self.exchange.now_ms:
                # A scaled clock restarted at wall time lags the simulated time it saved; start
                # the clock at saved_clock_ms() to keep timestamps monotone across restarts.
                log.warning("sim.clock_behind_state", clock_ms=now, state_ms=self.exchange.now_ms)
                self.exchange.rebase(now)
        self._save(force=True)
        if saved is not None and self._cfg.resend_fills_on_connect:
            self.resend_fills()
        if self._run_market and self._task is None:
            self._task = asyncio.create_task(self._run(), name=f"sim-market-{self.name}")
        log.info(
            "sim.connected",
            account=self.name,
            instruments=len(self.exchange.instruments),
            restored=saved is not None,
        )

    async def close(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._save(force=True)
        self._closed = True
        for signal in self._wake.values():
            signal.fire()
        log.info("sim.closed", account=self.name)

    async def _run(self) -> None:
        while True:
            await self._clock.sleep(self._cfg.tick_ms / 1000.0)
            try:
                self.tick()
            except Exception:  # one bad tick must not stop the market
                log.exception("sim.tick_failed", account=self.name)

    def tick(self) -> None:
        """Advance the exchange to the clock's now and wake the watchers (a no-op when the
        clock has not moved since the last tick)."""
        now = self._clock.now_ms()
        if now <= self.exchange.now_ms:
            return
        changes = self.exchange.tick(now)
        self._tick_no += 1
        self._publish(changes)
        self._save(force=bool(changes))
        self._wake["ticker"].fire()
        self._wake["order_book"].fire()

    def quiet_tick(self, prices: list[float], now_ms: int, ticks: int = 1) -> None:
        """`ticks` ticks up to `now_ms` for steps drawn outside with nothing but prices to move
        (SimExchange.quiet_until_ms), the last at `prices`: nobody is woken, nobody waits."""
        self.exchange.move_to(prices, now_ms)
        self._tick_no += ticks

    # -- fault hooks ------------------------------------------------------------------------

    def inject_reject(self, reason: str = "injected reject") -> None:
        """The next create_order is rejected with `reason` (and recorded as rejected)."""
        self._faults.creates.append((CreateFault.REJECT, reason))

    def inject_lost_response(self) -> None:
        """The next create_order is placed, but raises VenueAmbiguous after the latency."""
        self._faults.creates.append((CreateFault.LOST_RESPONSE, ""))

    def inject_lost_request(self) -> None:
        """The next create_order never reaches the venue and raises VenueAmbiguous."""
        self._faults.creates.append((CreateFault.LOST_REQUEST, ""))

    def inject_error(self, method: str, error: VenueError) -> None:
        """The next call of `method` (e.g. "fetch_positions", "cancel_order") raises `error`."""
        if not callable(getattr(self, method, None)):
            raise ValueError(f"SimVenue has no method {method!r}")
        self._faults.calls.setdefault(method, deque()).append(error)

    def pause_stream(self, stream: str) -> None:
        """Watchers of `stream` hang (a silent websocket) until resume_stream."""
        self._faults.paused.add(self._stream(stream))

    def resume_stream(self, stream: str) -> None:
        self._faults.paused.discard(self._stream(stream))
        self._wake[stream].fire()

    def drop_stream(self, stream: str) -> None:
        """The pending (or next) watch of `stream` raises VenueTransient, as a dropped websocket
        does; the call after that resubscribes."""
        self._faults.dropped.add(self._stream(stream))
        self._wake[stream].fire()

    def hide_new_orders(self, ms: int) -> None:
        """fetch_order says "never seen" for each order until `ms` clock ms after its create
        reached the venue (0: off)."""
        self._faults.hide_new_ms = max(int(ms), 0)

    def inject_unreachable_order(self) -> None:
        """The next create_order never reaches the venue (VenueAmbiguous) and every later
        lookup, cancel or fill fetch for its client id fails with VenueTransient."""
        self._faults.unreachable_next += 1

    def resend_fills(self) -> None:
        """The fills stream delivers every fill this venue ever made again (a reconnect that
        replays ccxt's trade cache)."""
        self._fills.push(list(self.exchange.fills))
        self._wake["fills"].fire()
        log.info("sim.fills_resent", account=self.name, fills=len(self.exchange.fills))

    def _answer_for(self, method: str, client_id: str) -> None:
        self._injected(method)
        if client_id in self._faults.unreachable:
            raise VenueTransient(f"simulated: no answer about {client_id}")

    @staticmethod
    def _stream(stream: str) -> str:
        if stream not in STREAMS:
            raise ValueError(f"unknown stream {stream!r}; one of {STREAMS}")
        return stream

    def _injected(self, method: str) -> None:
        error = self._faults.next_call_error(method)
        if error is not None:
            log.info("sim.fault_fired", method=method, error=repr(error))
            raise error

    # -- reads ------------------------------------------------------------------------------

    async def load_instruments(self) -> Mapping[str, Instrument]:
        self._injected("load_instruments")
        ex = self.exchange
        return {s: i for s, i in ex.instruments.items() if s not in ex.expired}

    def _live(self, symbol: str) -> None:
        if symbol not in self.exchange.instruments:
            raise VenueRejected(f"unknown symbol {symbol}")
        if symbol in self.exchange.expired:
            raise VenueRejected(f"instrument expired {symbol}")

    async def fetch_ticker(self, symbol: str) -> Ticker:
        self._injected("fetch_ticker")
        self._live(symbol)
        return self.exchange.ticker(symbol)

    async def fetch_order_book(self, symbol: str) -> OrderBook:
        self._injected("fetch_order_book")
        self._live(symbol)
        return self.exchange.book(symbol)

    async def fetch_funding_rate(self, symbol: str) -> FundingRate:
        """The configured rate for perps (`sim.funding_rates` by symbol, else `sim.funding_rate`;
        per account in `sim.accounts`), which the exchange also charges every 8 hours."""
        self._injected("fetch_funding_rate")
        self._live(symbol)
        if self.exchange.instruments[symbol].kind is not Kind.PERP:
            raise VenueRejected(f"{symbol} is not a perpetual: no funding rate")
        return FundingRate(self.exchange.funding_rate(symbol), 8.0, self._clock.now_ms())

    async def fetch_positions(self) -> Sequence[PositionReport]:
        self._injected("fetch_positions")
        return self.exchange.position_reports()

    async def fetch_balances(self) -> Mapping[str, float]:
        self._injected("fetch_balances")
        return dict(self.exchange.ledger.balances)

    async def fetch_open_orders(self) -> Sequence[OrderUpdate]:
        self._injected("fetch_open_orders")
        return [o.update() for o in self.exchange.orders.values() if o.is_open]

    async def fetch_order(self, client_id: str, symbol: str) -> OrderUpdate | None:
        """Any order this venue ever saw, rejected ones included; None if never seen."""
        self._answer_for("fetch_order", client_id)
        order = self.exchange.orders.get(client_id)
        if order is None:
            return None
        seen_ms = self._faults.created_ms.get(client_id)
        if seen_ms is not None and self._clock.now_ms() < seen_ms + self._faults.hide_new_ms:
            return None
        return order.update()

    async def fetch_fills(self, client_id: str, symbol: str) -> Sequence[Fill]:
        self._answer_for("fetch_fills", client_id)
        return list(self.exchange.fills_by_order.get(client_id, ()))

    # -- streams ----------------------------------------------------------------------------

    async def _wait(self, stream: str, ready: Callable[[], bool]) -> None:
        wake = self._wake[stream]
        while True:
            if self._closed:
                raise VenueTransient("sim venue closed")
            if stream in self._faults.dropped:
                self._faults.dropped.discard(stream)
                log.info("sim.stream_dropped", stream=stream)
                raise VenueTransient(f"simulated {stream} stream disconnect")
            if stream not in self._faults.paused and ready():
                return
            await wake.wait()

    async def watch_ticker(self, symbol: str) -> Ticker:
        self._injected("watch_ticker")
        self._live(symbol)
        start = self._tick_no
        await self._wait("ticker", lambda: self._tick_no > start)
        self._live(symbol)
        return self.exchange.ticker(symbol)

    async def watch_order_book(self, symbol: str) -> OrderBook:
        self._injected("watch_order_book")
        self._live(symbol)
        start = self._tick_no
        await self._wait("order_book", lambda: self._tick_no > start)
        self._live(symbol)
        return self.exchange.book(symbol)

    async def watch_orders(self) -> Sequence[OrderUpdate]:
        self._injected("watch_orders")
        await self._wait("orders", lambda: len(self._orders) > 0)
        return self._orders.take()

    async def watch_fills(self) -> Sequence[Fill]:
        self._injected("watch_fills")
        await self._wait("fills", lambda: len(self._fills) > 0)
        return self._fills.take()

    async def watch_positions(self) -> Sequence[PositionReport]:
        self._injected("watch_positions")
        await self._wait("positions", lambda: len(self._positions_out) > 0)
        return self._positions_out.take()

    def _publish(self, changes: Changes) -> None:
        if changes.orders:
            self._orders.push(changes.orders)
            self._wake["orders"].fire()
        if changes.fills:
            self._fills.push(changes.fills)
            self._wake["fills"].fire()
        if changes.positions:
            self._positions_out.push(changes.positions)
            self._wake["positions"].fire()

    # -- orders -----------------------------------------------------------------------------

    async def create_order(self, request: OrderRequest) -> OrderUpdate:
        self._injected("create_order")
        fault = self._faults.next_create()
        await self._clock.sleep(self._cfg.latency_ms / 1000.0)
        if self._faults.unreachable_next > 0:
            self._faults.unreachable_next -= 1
            self._faults.unreachable.add(request.client_id)
            log.info("sim.fault_fired", fault="unreachable", client_id=request.client_id)
            raise VenueAmbiguous("simulated lost request, venue unreachable for this order")
        if fault is not None and fault[0] is CreateFault.LOST_REQUEST:
            log.info("sim.fault_fired", fault=fault[0].value, client_id=request.client_id)
            raise VenueAmbiguous("simulated lost request")
        forced = fault[1] if fault is not None and fault[0] is CreateFault.REJECT else None
        now = self._clock.now_ms()
        try:
            order, changes = self.exchange.submit(request, now, forced_reject=forced)
        except Refused as e:
            log.info("sim.order_rejected", client_id=request.client_id, reason=str(e))
            raise VenueRejected(str(e)) from None
        self._publish(changes)
        self._save(force=True)
        if self._faults.hide_new_ms:
            self._faults.created_ms[request.client_id] = now
        update = order.update()
        if update.status is OrderStatus.REJECTED:
            log.info("sim.order_rejected", client_id=request.client_id, reason=update.reason)
            raise VenueRejected(update.reason or "rejected")
        log.info(
            "sim.order_created",
            client_id=request.client_id,
            symbol=request.symbol,
            side=request.side.value,
            amount=request.amount,
            price=request.price,
            status=update.status.value,
            filled=update.filled,
        )
        if fault is not None and fault[0] is CreateFault.LOST_RESPONSE:
            log.info("sim.fault_fired", fault=fault[0].value, client_id=request.client_id)
            raise VenueAmbiguous("simulated lost response")
        return update

    async def cancel_order(self, client_id: str, symbol: str) -> OrderUpdate | None:
        """The order after the cancel (unchanged when already final), or None if never seen."""
        self._answer_for("cancel_order", client_id)
        await self._clock.sleep(self._cfg.latency_ms / 1000.0)
        order, changes = self.exchange.cancel(client_id, self._clock.now_ms())
        if order is None:
            return None
        if changes:
            self._publish(changes)
            self._save(force=True)
            log.info("sim.order_cancelled", client_id=client_id, filled=order.filled)
        return order.update()

    # -- persistence ------------------------------------------------------------------------

    def _save(self, force: bool) -> None:
        path: Path | None = self._cfg.state_file
        if path is None:
            return
        now = monotonic_s()  # throttles file writes only; simulated time is the clock's
        if not force and now - self._last_save < TICK_SAVE_INTERVAL_S:
            return
        data = state.exchange_to_json(self.exchange)
        data["clock_ms"] = self._clock.now_ms()
        data["account"] = self.name
        state.write_atomic(path, data)
        self._last_save = now
