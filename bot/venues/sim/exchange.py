"""The simulated exchange itself: synchronous and deterministic, time passed in.

`SimExchange` owns the market, the books, the orders, the fills and the account. The asyncio
venue (venue.py) wraps it with latency, streams, faults and persistence; a backtest can drive it
directly: every method is synchronous and takes the time as an argument. Randomness comes from two
generators seeded from the config seed: one moves the market, the other draws rejects and partial
fills, so order flow never changes the price path. A tick costs the price path and little else:
fair values and books are computed when first asked for after the prices moved (quotes.py), and
only orders still working are looked at. How orders fill is fills.py's, what the clock settles
(funding, expiries) settlement.py's, the saved form state.py's.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

from bot.config_sim import PositionConfig, SimConfig
from bot.core.instruments import Instrument
from bot.core.market import BookLevel, OrderBook, Ticker
from bot.core.orders import Fill, OrderRequest, OrderStatus, PositionReport
from bot.venues.sim import book as bk
from bot.venues.sim import fills as fl
from bot.venues.sim import settlement as st
from bot.venues.sim.correlation import correlator_for
from bot.venues.sim.ledger import Ledger
from bot.venues.sim.listing import build_listing, symbol_for
from bot.venues.sim.market import MarketState, params_of, rngs, stepper_for
from bot.venues.sim.models import MarketModel
from bot.venues.sim.pricing import Fair
from bot.venues.sim.quotes import BookView, Quotes
from bot.venues.sim.records import Changes, Part, Refused, SimOrder

log = structlog.get_logger(__name__)


@dataclass(slots=True)
class Saved:
    """What a restart restores besides the listing and the market: the account, the orders and
    their fills, the expired instruments, the generators' states (None: fresh from the seed)
    and the id counters. bot/venues/sim/state.py writes and reads it."""

    ledger: Ledger
    orders: list[SimOrder] = field(default_factory=list)  # in arrival order
    fills: list[Fill] = field(default_factory=list)
    expired: set[str] = field(default_factory=set)
    rng: tuple[dict[str, Any], dict[str, Any]] | None = None  # (market, orders)
    order_seq: int = 0
    trade_seq: int = 0
    # Before every venue order and trade id: a fresh account's start (SimVenue), so a restart
    # without the saved state never hands out an id of the run before (a journal that kept
    # those trade ids would take the new fills as replays of the old ones).
    id_prefix: str = ""


class SimExchange:
    def __init__(
        self,
        cfg: SimConfig,
        instruments: Mapping[str, Instrument],
        market: MarketState,
        start_ms: int,
        saved: Saved | None = None,
    ) -> None:
        """`saved`: the state of a restart (bot/venues/sim/state.py); None: a fresh account."""
        saved = saved if saved is not None else Saved(Ledger(balances=dict(cfg.balances)))
        self.cfg = cfg
        self.instruments = dict(instruments)
        self._market: MarketState | None = market  # built from the quotes when read
        self.start_ms = start_ms
        self.params = params_of(cfg)
        self.book_params = bk.BookParams(
            spread_bps=cfg.spread_bps,
            depth_levels=cfg.depth_levels,
            level_step_bps=cfg.level_step_bps,
            level_notional_usd=cfg.level_notional_usd,
        )
        self.option_book_params = bk.BookParams(
            spread_bps=cfg.option_spread_bps,
            depth_levels=cfg.depth_levels,
            level_step_bps=cfg.level_step_bps,
            level_notional_usd=cfg.level_notional_usd,
        )
        self.market_rng, self.order_rng = rngs(cfg.seed)
        if saved.rng is not None:
            self.market_rng.bit_generator.state, self.order_rng.bit_generator.state = saved.rng
        self.ledger = saved.ledger
        # by client id, in arrival order
        self.orders: dict[str, SimOrder] = {o.request.client_id: o for o in saved.orders}
        self.fills: list[Fill] = []
        self.fills_by_order: dict[str, list[Fill]] = {}
        for fill in saved.fills:
            self._record_fill(fill)
        self.expired = set(saved.expired)
        self.order_seq = saved.order_seq
        self.trade_seq = saved.trade_seq
        self.id_prefix = saved.id_prefix
        self.funding_paid_usd = 0.0  # funding paid (negative: received) since start, at the index
        corr = correlator_for(cfg.correlation, list(market.prices), start_ms)
        self._stepper: MarketModel = stepper_for(self.params, market.prices, corr)
        self.quotes = Quotes(
            self.instruments,
            self._stepper.names,
            self._stepper.vols,
            self.book_params,
            self.option_book_params,
        )
        self.books: Mapping[str, OrderBook] = BookView(self.quotes, self.is_live)
        # open orders with resting or pending parts
        self._working = {c: o for c, o in self.orders.items() if o.working}
        self._expiries = st.expiry_schedule(self.instruments, self.expired)
        self._funded = st.funded_perps(cfg, self.instruments)
        self.quotes.move([market.prices[u] for u in self._stepper.names], market.ts_ms)

    # -- construction ---------------------------------------------------------------------------

    @staticmethod
    def create(
        cfg: SimConfig, positions: Iterable[PositionConfig], start_ms: int, id_prefix: str = ""
    ) -> SimExchange:
        """A fresh exchange at `start_ms`, with the starting positions opened at fair value and
        no fee; `id_prefix` goes before its order and trade ids (Saved.id_prefix)."""
        positions = list(positions)
        listing = build_listing(cfg, positions, start_ms)
        prices = {u: x.price for u, x in cfg.underlyings.items()}
        saved = Saved(Ledger(balances=dict(cfg.balances)), id_prefix=id_prefix)
        market = MarketState(ts_ms=start_ms, prices=prices)
        ex = SimExchange(cfg, listing, market, start_ms, saved)
        for pos in positions:
            inst = listing[symbol_for(pos, start_ms)]
            ex.ledger.trade(inst, pos.qty, ex.fair(inst.symbol).mark, 0.0)
        return ex

    # -- market ---------------------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self.quotes.ts_ms

    @property
    def market(self) -> MarketState:
        if self._market is None:
            prices = dict(zip(self._stepper.names, self.quotes.prices, strict=True))
            self._market = MarketState(ts_ms=self.quotes.ts_ms, prices=prices)
        return self._market

    def is_live(self, symbol: str) -> bool:
        return symbol in self.instruments and symbol not in self.expired

    def tick(self, now_ms: int) -> Changes:
        """Advance the market to `now_ms`, settle expiries, deliver partial fills in progress
        and fill resting orders the new books cross."""
        changes = Changes()
        ts = self.quotes.ts_ms
        if now_ms <= ts:
            return changes
        prices = self._stepper.advance(self.quotes.prices, ts, now_ms, self.market_rng)
        if self._stepper.dynamic_vols:
            self.quotes.set_vols(self._stepper.vols)
        self.quotes.move(prices, now_ms)
        self._market = None
        due = st.fundings_due(ts, now_ms)
        if due > 0:
            for paid_usd in st.pay_funding(
                self.cfg,
                self.ledger,
                self.instruments,
                self._funded,
                self.expired,
                self.quotes,
                due,
                now_ms,
            ):
                self.funding_paid_usd += paid_usd
        expiry = st.next_expiry_ms(self._expiries)
        if expiry is not None and expiry <= now_ms:
            changes.extend(self._settle_expired(now_ms))
        if not self._working:
            return changes
        for order in list(self._working.values()):
            if order.is_open and order.pending:
                changes.extend(self._deliver(order, order.pending.pop(0), now_ms))
        for order in list(self._working.values()):
            if order.is_open and order.resting > 0 and self.is_live(order.request.symbol):
                legs = fl.traded_through(order, self.quotes)
                if legs:
                    changes.extend(self._fill(order, legs, True, now_ms))
        self._working = {c: o for c, o in self._working.items() if o.working}
        return changes

    def quiet_until_ms(self) -> int | None:
        """Until when a tick only moves prices (no order working, which a tick may fill; the
        next expiry or funding payment; None: not even the next tick). For a backtest's
        fast-forward."""
        if self._working:
            return None
        expiry = st.next_expiry_ms(self._expiries)
        expiry = 2**62 if expiry is None else expiry
        funding = self.next_funding_ms()  # money moves then: a full tick books it
        return expiry if funding is None else min(expiry, funding)

    def move_to(self, prices: list[float], now_ms: int) -> None:
        """A tick before quiet_until_ms() whose step was drawn outside (the same model, the
        same draws): only the prices and the time move."""
        self.quotes.move(prices, now_ms)
        self._market = None

    @property
    def model(self) -> MarketModel:
        return self._stepper

    def use_model(self, model: MarketModel) -> None:
        """Step prices with `model` from now on (a backtest's --market or --data replay)."""
        if model.names != self._stepper.names:
            raise ValueError(f"market model names {model.names} != {self._stepper.names}")
        self._stepper = model
        self.quotes.set_vols(model.vols)

    def rebase(self, now_ms: int) -> None:
        """Move the market's time back to `now_ms`, prices unchanged: for a restart on a clock
        that is behind the saved state, so the market ticks at once instead of waiting for the
        clock to catch up. Order and fill timestamps are left as they were."""
        self.quotes.move(self.quotes.prices, now_ms)
        self._market = None

    def _live_or_raise(self, symbol: str) -> None:
        if not self.is_live(symbol):
            raise KeyError(symbol)

    def fair(self, symbol: str) -> Fair:
        """Fair value of a live instrument now (KeyError for unknown or expired ones)."""
        self._live_or_raise(symbol)
        return self.quotes.fair(symbol)

    def book(self, symbol: str) -> OrderBook:
        """Order book of a live instrument now (KeyError for unknown or expired ones)."""
        self._live_or_raise(symbol)
        return self.quotes.book(symbol)

    def ticker(self, symbol: str) -> Ticker:
        return self.tickers([symbol])[0]

    def tickers(self, symbols: Sequence[str]) -> list[Ticker]:
        """Tickers of live instruments now (KeyError for unknown or expired ones)."""
        for symbol in symbols:
            self._live_or_raise(symbol)
        return self.quotes.tickers(symbols)

    def funding_rate(self, symbol: str) -> float:
        """The configured funding rate of a perpetual per 8 hours (0 for anything else)."""
        return st.funding_rate(self.cfg, self.instruments.get(symbol))

    def next_funding_ms(self) -> int | None:
        """The next funding time that would move money (a perp held at a non-zero rate), or
        None when none would."""
        return st.next_funding_ms(self.ledger, self._funded, self.quotes.ts_ms)

    def _settle_expired(self, now_ms: int) -> Changes:
        changes = Changes()
        due = st.pop_due(self._expiries, now_ms)
        for sym, inst in self.instruments.items():  # in listing order, as before the schedule
            if sym not in due:
                continue
            self.expired.add(sym)
            for order in self.orders.values():
                if order.is_open and order.request.symbol == sym:
                    changes.orders.append(
                        order.close(OrderStatus.EXPIRED, "instrument expired", now_ms)
                    )
            index = self.quotes.index(inst.underlying)
            report = st.settle_expiry(self.ledger, inst, index, now_ms)
            if report is not None:
                changes.positions.append(report)
        return changes

    # -- orders ---------------------------------------------------------------------------------

    def submit(
        self, request: OrderRequest, now_ms: int, forced_reject: str | None = None
    ) -> tuple[SimOrder, Changes]:
        """Accept or reject one order. A rejected order is recorded (REJECTED, with its reason)
        so its client id stays findable; a duplicate client id raises Refused instead, leaving
        the first order untouched."""
        if request.client_id in self.orders:
            raise Refused("duplicate client order id")
        self.order_seq += 1
        order = SimOrder(
            request=request,
            venue_order_id=f"sim-{self.id_prefix}{self.order_seq}",
            ts_ms=now_ms,
            status=OrderStatus.OPEN,
        )
        self.orders[request.client_id] = order
        if len(self.orders) > 2 * self.cfg.order_history:
            self._forget()
        # Always one draw per order, so the reject rate does not shift later draws.
        draw = float(self.order_rng.random())
        reason = self._invalid(request) or forced_reject
        if reason is None and draw < self.cfg.reject_rate:
            reason = "simulated reject"
        if reason is not None:
            return order, Changes(orders=[order.close(OrderStatus.REJECTED, reason, now_ms)])
        inst = self.instruments[request.symbol]
        changes = Changes(orders=[order.update()])
        if request.post_only:
            order.resting = request.amount
        else:
            legs = fl.take(order, inst, self.quotes)
            if legs:
                changes = self._fill(order, legs, False, now_ms)
        if order.working:
            self._working[request.client_id] = order
        return order, changes

    def _invalid(self, r: OrderRequest) -> str | None:
        inst = self.instruments.get(r.symbol)
        if inst is None:
            return "unknown symbol"
        if r.symbol in self.expired:
            return "instrument expired"
        index = self.quotes.index(inst.underlying)
        book = self.quotes.book(r.symbol)
        return bk.order_problem(inst, r, book, self.ledger.qty(r.symbol), index)

    def _forget(self) -> None:
        """Keep every open order and the newest `order_history` finished ones, with their
        fills: a long run's memory stays bounded (amortized: this runs once the history has
        doubled)."""
        done = [c for c, o in self.orders.items() if not o.is_open]
        drop = set(done[: max(len(done) - self.cfg.order_history, 0)])
        if not drop:
            return
        self.orders = {c: o for c, o in self.orders.items() if c not in drop}
        self.fills = [f for f in self.fills if f.client_id not in drop]
        for c in drop:
            self.fills_by_order.pop(c, None)

    def cancel(self, client_id: str, now_ms: int) -> tuple[SimOrder | None, Changes]:
        """Cancel an open order; undelivered parts of a partial fill are dropped with it."""
        order = self.orders.get(client_id)
        if order is None or not order.is_open:
            return order, Changes()
        return order, Changes(orders=[order.close(OrderStatus.CANCELLED, "cancelled", now_ms)])

    def _fill(
        self, order: SimOrder, legs: tuple[BookLevel, ...], maker: bool, now_ms: int
    ) -> Changes:
        """Matched legs: the first part delivered now, any others a tick apart."""
        inst = self.instruments[order.request.symbol]
        parts = fl.split(self.order_rng, self.cfg.partial_fill_rate, legs, inst.amount_step, maker)
        order.pending.extend(parts[1:])
        return self._deliver(order, parts[0], now_ms)

    def _deliver(self, order: SimOrder, part: Part, now_ms: int) -> Changes:
        inst = self.instruments[order.request.symbol]
        index = self.quotes.index(inst.underlying)
        changes = fl.deliver(
            self.ledger, inst, order, part, index, self.trade_seq, now_ms, self.id_prefix
        )
        self.trade_seq += len(changes.fills)
        for fill in changes.fills:
            self._record_fill(fill)
        return changes

    def _record_fill(self, fill: Fill) -> None:
        self.fills.append(fill)
        self.fills_by_order.setdefault(fill.client_id, []).append(fill)

    # -- account --------------------------------------------------------------------------------

    def position_reports(self) -> list[PositionReport]:
        ts = self.quotes.ts_ms
        return [
            PositionReport(sym, pos.qty, ts)
            for sym, pos in self.ledger.positions.items()
            if sym not in self.expired
        ]
