"""Order books around a fair price, and matching against them (pure).

A book has `depth_levels` levels a side. The best level is `spread_bps/2` from the fair price and
each next one `level_step_bps` further; prices are rounded away from fair to the tick and kept at
least a tick apart. Each level holds `level_notional_usd` of underlying notional, in contracts
rounded down to the lot step (at least one step). A book is computed over all its levels at
once with numpy; the simulated exchange builds one only when someone asks for it.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from bot.core.greeks import FloatArray
from bot.core.instruments import Instrument, Kind
from bot.core.market import BookLevel, OrderBook
from bot.core.orders import OrderRequest, Side

OPTION_FEE_CAP = 0.125  # option fees are capped at 12.5% of the premium (as on Deribit)
FEW = 8  # up to this many instruments, tops_of_book takes them one by one


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


@dataclass(frozen=True, slots=True)
class Ladder:
    """What does not move with the price in one instrument's book, worked out once. Asks and
    bids are kept in one array of 2 x depth: asks as +ticks, bids as -ticks, so one ceil and one
    running maximum serve both sides."""

    inst: Instrument
    params: BookParams
    mult: FloatArray  # 1 + offset of each ask level, then 1 - offset of each bid level
    sign: FloatArray  # +1 for asks, -1 for bids
    side: FloatArray  # the same as a column: [[+1], [-1]]
    rank: FloatArray  # 0, 1, 2, ... as a row, for the running maximum on both sides
    tick: float
    decimals: int
    divisor: float  # a tick of 1/divisor (0.1 -> 10), 0 when it is not one
    lot_divisor: float  # the same for the amount step
    step: float  # level_step_bps as a fraction


def ladder(inst: Instrument, params: BookParams) -> Ladder:
    rank = np.arange(params.depth_levels, dtype=np.float64)
    off = (params.spread_bps / 2.0 + rank * params.level_step_bps) / 1e4
    tick = inst.price_step
    return Ladder(
        inst=inst,
        params=params,
        mult=np.concatenate((1.0 + off, 1.0 - off)),
        sign=np.repeat(np.array([1.0, -1.0]), params.depth_levels),
        side=np.array([[1.0], [-1.0]]),
        rank=rank,
        tick=tick,
        decimals=tick_decimals(tick),
        divisor=_divisor(tick),
        lot_divisor=_divisor(inst.amount_step),
        step=params.level_step_bps / 1e4,
    )


def _multiples(k: FloatArray, unit: float, decimals: int, divisor: float) -> FloatArray:
    """round(k * unit, decimals) for each whole number in `k`, the floats Python's round gives:
    for a unit of 1/divisor (0.1 -> 10) that is k / divisor, one correctly rounded division,
    while k * unit is far from 53 bits; otherwise each goes through round()."""
    if max(float(k.max()), -float(k.min())) * unit * 10.0**decimals < 2.0**50:
        if unit.is_integer():
            return k * unit
        if divisor:
            return k / divisor
    return np.array([round(x * unit, decimals) for x in k.ravel().tolist()]).reshape(k.shape)


def _divisor(unit: float) -> float:
    """m when `unit` is the float nearest 1/m (0.1 -> 10, 0.001 -> 1000), else 0."""
    m = round(1.0 / unit)
    return float(m) if m > 0 and 1.0 / m == unit else 0.0


def top_of_book(inst: Instrument, fair: float, params: BookParams) -> tuple[float | None, float]:
    """(best bid, best ask) of `make_book` without building the book: None when no bid is
    above zero."""
    tick = inst.price_step
    off = params.spread_bps / 2.0 / 1e4
    ask = to_tick(fair * (1.0 + off), tick, up=True)
    bid = to_tick(fair * (1.0 - off), tick, up=False)
    if bid >= ask:
        bid = round(ask - tick, tick_decimals(tick))
    return (bid if bid > 0.0 else None), ask


@dataclass(frozen=True, slots=True)
class Ticks:
    """The price steps of many instruments as `tops_of_book` needs them, worked out once."""

    insts: tuple[Instrument, ...]
    tick: FloatArray
    divisor: FloatArray  # m where the tick is the float nearest 1/m, else 0 (`_divisor`)
    scale: FloatArray  # 10 ** tick_decimals


def ticks_of(insts: Sequence[Instrument]) -> Ticks:
    steps = [i.price_step for i in insts]
    scale = [10 ** tick_decimals(t) for t in steps]
    # k / m is what round(k * tick, decimals) gives only if k / m has that many decimals
    divisor = [
        m if m and s % m == 0 else 0.0 for m, s in zip(map(_divisor, steps), scale, strict=True)
    ]
    return Ticks(
        insts=tuple(insts),
        tick=np.array(steps, dtype=np.float64),
        divisor=np.array(divisor, dtype=np.float64),
        scale=np.array(scale, dtype=np.float64),
    )


def tops_of_book(
    ticks: Ticks, fair: FloatArray, params: BookParams
) -> tuple[list[float | None], list[float]]:
    """`top_of_book` of each of `ticks.insts` at its `fair`, at once and the same floats: k
    ticks of 1/m is k / m (see `_multiples`); any other price goes through `top_of_book`."""
    if len(fair) <= FEW:  # numpy's cost a call is more than a few scalar tops
        tops = [top_of_book(i, f, params) for i, f in zip(ticks.insts, fair.tolist(), strict=True)]
        return [b for b, _ in tops], [a for _, a in tops]
    off = params.spread_bps / 2.0 / 1e4
    tick, divisor = ticks.tick, ticks.divisor
    with np.errstate(invalid="ignore", over="ignore", divide="ignore"):
        up = np.ceil(fair * (1.0 + off) / tick - 1e-9)
        down = np.floor(fair * (1.0 - off) / tick + 1e-9)
        down = np.minimum(down, up - 1.0)  # at least a tick below the ask
        # (NaN and inf fail the test, and top_of_book raises on them as before)
        big = np.maximum(np.abs(up), np.abs(down)) * tick * ticks.scale
        exact = (divisor > 0.0) & (big < 2.0**50)
        asks, bids = (up / divisor).tolist(), (down / divisor).tolist()
    out: list[float | None] = [b if b > 0.0 else None for b in bids]
    if not exact.all():
        for n in np.flatnonzero(~exact).tolist():
            out[n], asks[n] = top_of_book(ticks.insts[n], float(fair[n]), params)
    return out, asks


def book_levels(
    lad: Ladder, fair: float, index: float
) -> tuple[list[float], list[float], list[float], list[float]]:
    """Bid prices, bid amounts, ask prices and ask amounts of the book around `fair`, best first,
    computed over all levels at once."""
    d = lad.params.depth_levels
    # Asks: ceil(p / tick - 1e-9) ticks; bids: floor(p / tick + 1e-9), kept negated.
    ticks = np.ceil(lad.sign * (fair * lad.mult / lad.tick) - 1e-9).reshape(2, d)
    if -ticks[1, 0] >= ticks[0, 0]:
        ticks[1, 0] = 1.0 - ticks[0, 0]  # keep the spread >= 1 tick
    # Levels strictly monotone (a tick apart at least) when the step is below the tick: level i
    # is max(own, previous + 1), a running maximum of ticks - i (bids negated, so the same).
    # Levels a step of more than a tick apart are that already.
    if fair * lad.step < lad.tick * (1.0 + 1e-6):
        ticks = np.maximum.accumulate(ticks - lad.rank, axis=1) + lad.rank
    prices = _multiples(lad.side * ticks, lad.tick, lad.decimals, lad.divisor)
    asks, bids = prices[0].tolist(), prices[1].tolist()
    n = len(bids) if bids[-1] > 0.0 else sum(1 for p in bids if p > 0.0)  # none at or below 0
    inst = lad.inst
    if inst.kind is Kind.OPTION or inst.is_inverse:  # the same contracts at every level
        q = level_amount(inst, 1.0, index, lad.params.level_notional_usd)
        return bids[:n], [q] * n, asks, [q] * len(asks)
    if asks[0] <= 0.0:  # a level worth nothing holds no finite number of contracts
        raise ValueError(f"{inst.symbol}: fair price {fair} is below one tick ({lad.tick})")
    if n == len(bids):
        both = _linear_amounts(lad, prices)
        return bids, both[1].tolist(), asks, both[0].tolist()
    bid_q = _linear_amounts(lad, prices[1, :n]).tolist() if n else []
    return bids[:n], bid_q, asks, _linear_amounts(lad, prices[0]).tolist()


def _linear_amounts(lad: Ladder, prices: FloatArray) -> FloatArray:
    """Contracts at each level price of a linear delta-one instrument (notional / price)."""
    step = lad.inst.amount_step
    contracts = lad.params.level_notional_usd / (lad.inst.contract_size * prices)
    steps = np.maximum(1.0, np.floor(contracts / step + 1e-9))
    return _multiples(steps, step, 12, lad.lot_divisor)


# BookLevel is a frozen dataclass, whose __init__ sets each field through object.__setattr__;
# filling the slots directly builds the same objects about three times faster, and a book has
# 2 x depth_levels of them.
_set_price = getattr(BookLevel, "price").__set__  # noqa: B009 (the slot descriptor)
_set_amount = getattr(BookLevel, "amount").__set__  # noqa: B009


def levels(prices: list[float], amounts: list[float]) -> tuple[BookLevel, ...]:
    out = tuple(map(BookLevel.__new__, itertools.repeat(BookLevel, len(prices))))
    list(map(_set_price, out, prices))  # the list only drives map at C speed
    list(map(_set_amount, out, amounts))
    return out


def make_book(
    inst: Instrument, fair: float, index: float, ts_ms: int, params: BookParams
) -> OrderBook:
    bid_p, bid_q, ask_p, ask_q = book_levels(ladder(inst, params), fair, index)
    return OrderBook(
        symbol=inst.symbol, ts_ms=ts_ms, bids=levels(bid_p, bid_q), asks=levels(ask_p, ask_q)
    )


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


def split(legs: tuple[BookLevel, ...], step: float, k: int) -> list[tuple[BookLevel, ...]]:
    """Matched legs cut into `k` parts of (nearly) equal whole lot steps, in price order; fewer
    parts when there are fewer steps than `k`, and one part when there are fewer than two."""
    total = sum(steps_of(x.amount, step) for x in legs)
    if total < 2:
        return [legs]
    k = min(k, total)
    sizes = [total // k + (1 if i < total % k else 0) for i in range(k)]
    prices = [x.price for x in legs]
    left = [steps_of(x.amount, step) for x in legs]
    parts: list[tuple[BookLevel, ...]] = []
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
        parts.append(tuple(out))
    return parts


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
