"""Order books around a fair price, and matching against them (pure).

A book has `depth_levels` levels a side. The best level is `spread_bps/2` from the fair price and
each next one `level_step_bps` further; prices are rounded away from fair to the tick and kept at
least a tick apart. Each level holds `level_notional_usd` of underlying notional, in contracts
rounded down to the lot step (at least one step).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from bot.core.instruments import Instrument, Kind
from bot.core.market import BookLevel, OrderBook
from bot.core.orders import OrderRequest, Side

OPTION_FEE_CAP = 0.125  # option fees are capped at 12.5% of the premium (as on Deribit)


@dataclass(frozen=True, slots=True)
class BookParams:
    spread_bps: float
    depth_levels: int
    level_step_bps: float
    level_notional_usd: float


def steps_of(qty: float, step: float) -> int:
    """`qty` in whole lot steps (tolerant of float noise)."""
    return round(qty / step)


def on_step(qty: float, step: float) -> bool:
    return abs(qty / step - round(qty / step)) < 1e-6


def quantize(qty: float, step: float) -> float:
    return round(steps_of(qty, step) * step, 12)


def tick_decimals(tick: float) -> int:
    """Decimals that print every multiple of `tick` exactly (0.1 -> 1, 0.0001 -> 4)."""
    return max(0, -math.floor(math.log10(tick) + 1e-9)) + 2


def to_tick(price: float, tick: float, up: bool) -> float:
    """Round to the tick (up or down), without float noise such as 59981.600000000006."""
    ticks = price / tick
    n = math.ceil(ticks - 1e-9) if up else math.floor(ticks + 1e-9)
    return round(n * tick, tick_decimals(tick))


def usd_per_contract(inst: Instrument, price: float, index: float) -> float:
    """Underlying notional of one contract in USD."""
    if inst.is_inverse and inst.kind is not Kind.OPTION:
        return inst.contract_size
    if inst.kind is Kind.OPTION:
        return inst.contract_size * index
    return inst.contract_size * price


def level_amount(inst: Instrument, price: float, index: float, notional_usd: float) -> float:
    contracts = notional_usd / usd_per_contract(inst, price, index)
    steps = max(1, math.floor(contracts / inst.amount_step + 1e-9))
    return round(steps * inst.amount_step, 12)


def make_book(
    inst: Instrument, fair: float, index: float, ts_ms: int, params: BookParams
) -> OrderBook:
    tick = inst.price_step
    dec = tick_decimals(tick)
    bids: list[BookLevel] = []
    asks: list[BookLevel] = []
    for i in range(params.depth_levels):
        off = (params.spread_bps / 2.0 + i * params.level_step_bps) / 1e4
        ask = to_tick(fair * (1.0 + off), tick, up=True)
        bid = to_tick(fair * (1.0 - off), tick, up=False)
        # Keep levels strictly monotone when the step is below the tick, and the spread >= 1 tick.
        if asks:
            ask = max(ask, round(asks[-1].price + tick, dec))
        if bids:
            bid = min(bid, round(bids[-1].price - tick, dec))
        elif bid >= ask:
            bid = round(ask - tick, dec)
        asks.append(BookLevel(ask, level_amount(inst, ask, index, params.level_notional_usd)))
        if bid > 0.0:
            bids.append(BookLevel(bid, level_amount(inst, bid, index, params.level_notional_usd)))
    return OrderBook(symbol=inst.symbol, ts_ms=ts_ms, bids=tuple(bids), asks=tuple(asks))


def crosses(side: Side, limit: float, level_price: float) -> bool:
    return level_price <= limit + 1e-12 if side is Side.BUY else level_price >= limit - 1e-12


def would_cross(book: OrderBook, side: Side, limit: float) -> bool:
    top = book.asks if side is Side.BUY else book.bids
    return bool(top) and crosses(side, limit, top[0].price)


@dataclass(frozen=True, slots=True)
class Match:
    fills: tuple[BookLevel, ...]  # (price, amount) taken from each level, best first
    book: OrderBook  # the book with that liquidity removed

    @property
    def filled(self) -> float:
        return round(sum(f.amount for f in self.fills), 12)


def match(book: OrderBook, side: Side, amount: float, limit: float, step: float) -> Match:
    """Take up to `amount` from the levels that cross `limit`, best first."""
    levels = book.asks if side is Side.BUY else book.bids
    left = steps_of(amount, step)
    fills: list[BookLevel] = []
    rest: list[BookLevel] = []
    for i, lvl in enumerate(levels):
        if left == 0 or not crosses(side, limit, lvl.price):
            rest.extend(levels[i:])
            break
        have = steps_of(lvl.amount, step)
        take = min(have, left)
        left -= take
        fills.append(BookLevel(lvl.price, round(take * step, 12)))
        if have > take:
            rest.append(BookLevel(lvl.price, round((have - take) * step, 12)))
    after = tuple(rest)
    if side is Side.BUY:
        new = OrderBook(book.symbol, book.ts_ms, bids=book.bids, asks=after)
    else:
        new = OrderBook(book.symbol, book.ts_ms, bids=after, asks=book.asks)
    return Match(fills=tuple(fills), book=new)


def fee(inst: Instrument, amount: float, price: float, index: float, rate: float) -> float:
    """Fee of a fill, in the settlement currency: quote for linear, coin for inverse.

    Delta-one: rate x traded value. Options: rate x underlying notional, capped at a share of the
    premium, so deep out-of-the-money options do not cost more in fees than they are worth.
    """
    size = amount * inst.contract_size
    if inst.kind is Kind.OPTION:
        premium = size * price  # quote for linear, coin for inverse
        notional = size if inst.is_inverse else size * index
        return min(rate * notional, OPTION_FEE_CAP * premium)
    if inst.is_inverse:
        return rate * size / price
    return rate * size * price


def order_problem(
    inst: Instrument, r: OrderRequest, book: OrderBook, held: float, index: float
) -> str | None:
    """Why a venue would refuse this order, or None. Shared by the simulated exchange and the
    paper venue (bot/venues/paper.py), so both refuse exactly what the other refuses.
    `held` is the signed position in the instrument, `index` the underlying's USD price."""
    if not (math.isfinite(r.amount) and r.amount > 0) or not on_step(r.amount, inst.amount_step):
        return "amount is not a multiple of the amount step"
    if r.amount < inst.min_amount - 1e-12:
        return "amount below the minimum"
    if not (math.isfinite(r.price) and r.price > 0):
        return "invalid price"
    if not on_step(r.price, inst.price_step):
        return "price is not a multiple of the price step"
    if inst.min_cost > 0 and inst.notional_usd(r.amount, index) < inst.min_cost:
        return "order value below the minimum"
    if r.reduce_only:
        if held * r.side.sign >= 0:
            return "reduce-only order would increase the position"
        if r.amount > abs(held) + 1e-12:
            return "reduce-only amount exceeds the position"
    if r.post_only and would_cross(book, r.side, r.price):
        return "post-only order would cross"
    return None
