"""The simulated exchange itself: synchronous and deterministic, time passed in.

`SimExchange` owns the market, the books, the orders, the fills and the account. The asyncio
venue (venue.py) wraps it with latency, streams, faults and persistence; a backtest can drive it
directly. Randomness comes from two generators seeded from the config seed: one moves the market,
the other draws rejects and partial fills, so order flow never changes the price path.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import structlog

from bot.config import PositionConfig, SimConfig
from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.market import BookLevel, OrderBook, Ticker
from bot.core.orders import Fill, OrderRequest, OrderStatus, OrderUpdate, PositionReport
from bot.venues.sim import book as bk
from bot.venues.sim.ledger import Ledger, Position
from bot.venues.sim.listing import build_listing, settle_currency, symbol_for
from bot.venues.sim.market import MarketState, UnderlyingParams, step
from bot.venues.sim.pricing import Fair, fair_value
from bot.venues.sim.records import Part, SimOrder, fill_from_json, fill_to_json

log = structlog.get_logger(__name__)

STATE_VERSION = 1


class Refused(Exception):
    """A request refused without recording an order (a duplicate client id)."""


@dataclass(slots=True)
class Changes:
    """What one operation changed, for the streams."""

    orders: list[OrderUpdate] = field(default_factory=list)
    fills: list[Fill] = field(default_factory=list)
    positions: list[PositionReport] = field(default_factory=list)

    def extend(self, other: Changes) -> None:
        self.orders.extend(other.orders)
        self.fills.extend(other.fills)
        self.positions.extend(other.positions)

    def __bool__(self) -> bool:
        return bool(self.orders or self.fills or self.positions)


def _params(cfg: SimConfig) -> dict[str, UnderlyingParams]:
    return {
        u: UnderlyingParams(
            vol=x.vol,
            drift=x.drift,
            jump_intensity=x.jump_intensity,
            jump_mean=x.jump_mean,
            jump_std=x.jump_std,
        )
        for u, x in cfg.underlyings.items()
    }


def _rngs(seed: int) -> tuple[np.random.Generator, np.random.Generator]:
    market, orders = np.random.SeedSequence(seed).spawn(2)
    return np.random.default_rng(market), np.random.default_rng(orders)


class SimExchange:
    def __init__(
        self,
        cfg: SimConfig,
        instruments: Mapping[str, Instrument],
        market: MarketState,
        start_ms: int,
    ) -> None:
        self.cfg = cfg
        self.instruments = dict(instruments)
        self.market = market
        self.start_ms = start_ms
        self.params = _params(cfg)
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
        self.market_rng, self.order_rng = _rngs(cfg.seed)
        self.ledger = Ledger(balances=dict(cfg.balances))
        self.orders: dict[str, SimOrder] = {}  # by client id, in arrival order
        self.fills: list[Fill] = []
        self.fills_by_order: dict[str, list[Fill]] = {}
        self.expired: set[str] = set()
        self.order_seq = 0
        self.trade_seq = 0
        self.fairs: dict[str, Fair] = {}
        self.books: dict[str, OrderBook] = {}
        self._reprice()

    # -- construction and persistence ---------------------------------------------------------

    @staticmethod
    def create(cfg: SimConfig, positions: Iterable[PositionConfig], start_ms: int) -> SimExchange:
        """A fresh exchange at `start_ms`, with the starting positions opened at fair value and
        no fee."""
        positions = list(positions)
        listing = build_listing(cfg, positions, start_ms)
        prices = {u: x.price for u, x in cfg.underlyings.items()}
        ex = SimExchange(cfg, listing, MarketState(ts_ms=start_ms, prices=prices), start_ms)
        for pos in positions:
            inst = listing[symbol_for(pos, start_ms)]
            ex.ledger.trade(inst, pos.qty, ex.fairs[inst.symbol].mark, 0.0)
        return ex

    def to_json(self) -> dict[str, Any]:
        return {
            "version": STATE_VERSION,
            "start_ms": self.start_ms,
            "market": {"ts_ms": self.market.ts_ms, "prices": dict(self.market.prices)},
            "rng": {
                "market": self.market_rng.bit_generator.state,
                "orders": self.order_rng.bit_generator.state,
            },
            "instruments": [_instrument_to_json(i) for i in self.instruments.values()],
            "expired": sorted(self.expired),
            "orders": [o.to_json() for o in self.orders.values()],
            "fills": [fill_to_json(f) for f in self.fills],
            "positions": {s: [p.qty, p.cost] for s, p in self.ledger.positions.items()},
            "balances": dict(self.ledger.balances),
            "seq": {"order": self.order_seq, "trade": self.trade_seq},
        }

    @staticmethod
    def from_json(
        cfg: SimConfig, data: Mapping[str, Any], positions: Iterable[PositionConfig] = ()
    ) -> SimExchange:
        """The exchange saved in `data`. Dynamics (vols, fees of new listings, book shape) come
        from `cfg`; prices, orders and the account from the saved state."""
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported sim state version {data.get('version')!r}")
        start_ms = int(data["start_ms"])
        prices = {u: float(p) for u, p in data["market"]["prices"].items()}
        missing = sorted(set(prices) - set(cfg.underlyings))
        if missing:
            raise ValueError(f"saved sim state has underlyings not in sim.underlyings: {missing}")
        for u, x in cfg.underlyings.items():
            prices.setdefault(u, x.price)
        instruments = build_listing(cfg, positions, start_ms)
        instruments.update({d["symbol"]: _instrument_from_json(d) for d in data["instruments"]})
        market = MarketState(ts_ms=int(data["market"]["ts_ms"]), prices=prices)
        ex = SimExchange(cfg, instruments, market, start_ms)
        ex.market_rng.bit_generator.state = data["rng"]["market"]
        ex.order_rng.bit_generator.state = data["rng"]["orders"]
        ex.expired = set(data["expired"])
        for d in data["orders"]:
            order = SimOrder.from_json(d)
            ex.orders[order.request.client_id] = order
        for d in data["fills"]:
            ex._record_fill(fill_from_json(d))
        ex.ledger = Ledger(
            positions={s: Position(qty=q, cost=c) for s, (q, c) in data["positions"].items()},
            balances={c: float(v) for c, v in data["balances"].items()},
        )
        ex.order_seq = int(data["seq"]["order"])
        ex.trade_seq = int(data["seq"]["trade"])
        ex._reprice()
        return ex

    # -- market ---------------------------------------------------------------------------------

    @property
    def now_ms(self) -> int:
        return self.market.ts_ms

    def live(self, symbol: str) -> Instrument | None:
        inst = self.instruments.get(symbol)
        return None if inst is None or symbol in self.expired else inst

    def _reprice(self) -> None:
        ts = self.market.ts_ms
        self.fairs.clear()
        self.books.clear()
        for sym, inst in self.instruments.items():
            if sym in self.expired:
                continue
            index = self.market.prices[inst.underlying]
            fair = fair_value(inst, index, self.params[inst.underlying].vol, ts)
            params = self.option_book_params if inst.kind is Kind.OPTION else self.book_params
            self.fairs[sym] = fair
            self.books[sym] = bk.make_book(inst, fair.mark, index, ts, params)

    def tick(self, now_ms: int) -> Changes:
        """Advance the market to `now_ms`, settle expiries, deliver partial fills in progress
        and fill resting orders the new books cross."""
        changes = Changes()
        if now_ms <= self.market.ts_ms:
            return changes
        self.market = step(self.market, self.params, now_ms, self.market_rng)
        changes.extend(self._settle_expired(now_ms))
        self._reprice()
        for order in list(self.orders.values()):
            if order.is_open and order.pending:
                changes.extend(self._deliver(order, order.pending.pop(0), now_ms))
        for order in list(self.orders.values()):
            if order.is_open and order.resting > 0 and order.request.symbol in self.books:
                changes.extend(self._match_resting(order, now_ms))
        return changes

    def rebase(self, now_ms: int) -> None:
        """Move the market's time back to `now_ms`, prices unchanged: for a restart on a clock
        that is behind the saved state, so the market ticks at once instead of waiting for the
        clock to catch up. Order and fill timestamps are left as they were."""
        self.market = MarketState(ts_ms=now_ms, prices=dict(self.market.prices))
        self._reprice()

    def ticker(self, symbol: str) -> Ticker:
        inst = self.instruments[symbol]
        fair = self.fairs[symbol]
        book = self.books[symbol]
        return Ticker(
            symbol=symbol,
            ts_ms=self.market.ts_ms,
            bid=book.best_bid,
            ask=book.best_ask,
            last=fair.mark,
            mark=fair.mark,
            index=self.market.prices[inst.underlying],
            iv=fair.iv,
            venue_delta=fair.delta,
        )

    def _settle_expired(self, now_ms: int) -> Changes:
        changes = Changes()
        for sym, inst in self.instruments.items():
            if sym in self.expired or inst.expiry_ms is None or inst.expiry_ms > now_ms:
                continue
            self.expired.add(sym)
            for order in self.orders.values():
                if order.is_open and order.request.symbol == sym:
                    changes.orders.append(
                        self._close(order, OrderStatus.EXPIRED, "instrument expired", now_ms)
                    )
            index = self.market.prices[inst.underlying]
            held = self.ledger.qty(sym)
            cash = self.ledger.settle_expired(inst, index)
            if held:
                changes.positions.append(PositionReport(sym, 0.0, now_ms))
            log.info(
                "sim.instrument_expired",
                symbol=sym,
                index=index,
                qty=held,
                cash=cash,
                currency=settle_currency(inst),
            )
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
            venue_order_id=f"sim-{self.order_seq}",
            ts_ms=now_ms,
            status=OrderStatus.OPEN,
        )
        self.orders[request.client_id] = order
        # Always one draw per order, so the reject rate does not shift later draws.
        draw = float(self.order_rng.random())
        reason = self._invalid(request) or forced_reject
        if reason is None and draw < self.cfg.reject_rate:
            reason = "simulated reject"
        if reason is not None:
            return order, Changes(orders=[self._close(order, OrderStatus.REJECTED, reason, now_ms)])
        inst = self.instruments[request.symbol]
        book = self.books[request.symbol]
        changes = Changes(orders=[order.update()])
        if request.post_only:
            order.resting = request.amount
            return order, changes
        m = bk.match(book, request.side, request.amount, request.price, inst.amount_step)
        self.books[request.symbol] = m.book
        order.resting = round(request.amount - m.filled, 12)
        if m.fills:
            parts = self._split(m.fills, inst.amount_step, maker=False)
            order.pending = parts[1:]
            changes = self._deliver(order, parts[0], now_ms)
        return order, changes

    def _invalid(self, r: OrderRequest) -> str | None:
        inst = self.instruments.get(r.symbol)
        if inst is None:
            return "unknown symbol"
        if r.symbol in self.expired:
            return "instrument expired"
        index = self.market.prices[inst.underlying]
        return bk.order_problem(inst, r, self.books[r.symbol], self.ledger.qty(r.symbol), index)

    def cancel(self, client_id: str, now_ms: int) -> tuple[SimOrder | None, Changes]:
        """Cancel an open order; undelivered parts of a partial fill are dropped with it."""
        order = self.orders.get(client_id)
        if order is None or not order.is_open:
            return order, Changes()
        return order, Changes(
            orders=[self._close(order, OrderStatus.CANCELLED, "cancelled", now_ms)]
        )

    def _close(self, order: SimOrder, status: OrderStatus, reason: str, now_ms: int) -> OrderUpdate:
        order.status = status
        order.reason = reason
        order.resting = 0.0
        order.pending = []
        order.ts_ms = now_ms
        return order.update()

    def _match_resting(self, order: SimOrder, now_ms: int) -> Changes:
        r = order.request
        if not bk.would_cross(self.books[r.symbol], r.side, r.price):
            return Changes()
        inst = self.instruments[r.symbol]
        # The market traded through the order: it fills at its own price, as the maker.
        legs = (BookLevel(r.price, order.resting),)
        order.resting = 0.0
        parts = self._split(legs, inst.amount_step, maker=True)
        order.pending.extend(parts[1:])
        return self._deliver(order, parts[0], now_ms)

    def _split(self, legs: tuple[BookLevel, ...], step: float, maker: bool) -> list[Part]:
        """One part, or with probability partial_fill_rate two or three delivered a tick apart."""
        draw = float(self.order_rng.random())
        k = int(self.order_rng.integers(2, 4))
        total = sum(bk.steps_of(x.amount, step) for x in legs)
        if draw >= self.cfg.partial_fill_rate or total < 2:
            return [Part(legs=legs, maker=maker)]
        k = min(k, total)
        sizes = [total // k + (1 if i < total % k else 0) for i in range(k)]
        prices = [x.price for x in legs]
        left = [bk.steps_of(x.amount, step) for x in legs]
        parts: list[Part] = []
        i = 0
        for size in sizes:
            out: list[BookLevel] = []
            while size > 0:
                take = min(left[i], size)
                out.append(BookLevel(prices[i], round(take * step, 12)))
                size -= take
                left[i] -= take
                if left[i] == 0:
                    i += 1
            parts.append(Part(legs=tuple(out), maker=maker))
        return parts

    def _deliver(self, order: SimOrder, part: Part, now_ms: int) -> Changes:
        r = order.request
        inst = self.instruments[r.symbol]
        index = self.market.prices[inst.underlying]
        changes = Changes()
        for leg in part.legs:
            self.trade_seq += 1
            fill = self.ledger.fill_leg(
                inst, order, leg, index, part.maker, f"t-{self.trade_seq}", now_ms
            )
            self._record_fill(fill)
            changes.fills.append(fill)
            log.info(
                "sim.fill",
                client_id=r.client_id,
                symbol=r.symbol,
                side=r.side.value,
                amount=leg.amount,
                price=leg.price,
                fee=fill.fee,
                fee_currency=fill.fee_currency,
                maker=part.maker,
            )
        order.ts_ms = now_ms
        order.refresh_status()
        changes.orders.append(order.update())
        changes.positions.append(PositionReport(r.symbol, self.ledger.qty(r.symbol), now_ms))
        return changes

    def _record_fill(self, fill: Fill) -> None:
        self.fills.append(fill)
        self.fills_by_order.setdefault(fill.client_id, []).append(fill)

    # -- account --------------------------------------------------------------------------------

    def position_reports(self) -> list[PositionReport]:
        ts = self.market.ts_ms
        return [
            PositionReport(sym, pos.qty, ts)
            for sym, pos in self.ledger.positions.items()
            if sym not in self.expired
        ]


def _instrument_to_json(inst: Instrument) -> dict[str, Any]:
    return {k: (v.value if hasattr(v, "value") else v) for k, v in asdict(inst).items()}


def _instrument_from_json(d: Mapping[str, Any]) -> Instrument:
    d = dict(d)
    d["kind"] = Kind(d["kind"])
    d["settlement"] = Settlement(d["settlement"])
    if d.get("option_type") is not None:
        d["option_type"] = OptionType(d["option_type"])
    return Instrument(**d)
