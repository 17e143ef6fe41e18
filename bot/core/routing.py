"""Routing: which of an underlying's candidate hedge instruments an order goes to. Pure.

Per candidate, the cost of the order in bps of its notional is
    taker fee + half-spread + expected slippage (walking the live book for the order's size,
    beyond the half-spread) + expected funding over the holding horizon (perps: a buy pays
    +rate, a sell receives it, so a positive rate makes longs dearer and shorts cheaper).
The order goes to the cheapest candidate with room under its position limit (held plus
in-flight, in coin); what does not fit goes to the next cheapest, and so on. Futures basis is
reported, not priced in: it is a level the hedge holds, not a cost of trading.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from bot.core.book import LineKey
from bot.core.instruments import Instrument, Kind
from bot.core.market import FundingRate, OrderBook
from bot.core.orders import Side
from bot.execution.pricing import walk_book

MS_PER_HOUR = 3_600_000.0
MS_PER_YEAR = 365.0 * 24 * MS_PER_HOUR


@dataclass(frozen=True, slots=True)
class Candidate:
    """One line an order may go to, as the hedger sees it now."""

    key: LineKey
    instrument: Instrument
    book: OrderBook | None
    position_coin: float  # held plus in-flight, signed coin delta
    limit_coin: float
    funding: FundingRate | None  # perps: the latest rate read; None when none
    funding_fresh: bool  # False: missing or older than the configured age (counted as zero)
    quote_fresh: bool = True  # False: no ticker or book within the staleness limit
    blocked: str | None = None  # a reason the caller knows it must not be used


@dataclass(frozen=True, slots=True)
class CandidateCost:
    key: LineKey
    room_coin: float  # how much more it may take on the order's side before its limit
    size_coin: float  # the size the costs below are for: min(order, room)
    fee_bps: float
    half_spread_bps: float
    slippage_bps: float
    funding_bps: float
    funding_rate: float | None
    funding: str  # "fresh", "stale" (counted as zero) or "n/a" (not a perp)
    basis_bps: float | None  # futures: (mid - index) / index
    basis_annual: float | None
    total_bps: float
    cost_usd: float
    skipped: str | None  # why it gets nothing: stale_market_data, no_book, at_limit, or blocked

    def as_dict(self) -> dict[str, Any]:
        return {
            "account": self.key[0],
            "symbol": self.key[1],
            "room_coin": self.room_coin,
            "size_coin": self.size_coin,
            "fee_bps": self.fee_bps,
            "half_spread_bps": self.half_spread_bps,
            "slippage_bps": self.slippage_bps,
            "funding_bps": self.funding_bps,
            "funding_rate": self.funding_rate,
            "funding": self.funding,
            "basis_bps": self.basis_bps,
            "basis_annual": self.basis_annual,
            "total_bps": self.total_bps,
            "cost_usd": self.cost_usd,
            "skipped": self.skipped,
        }


@dataclass(frozen=True, slots=True)
class Leg:
    key: LineKey
    coin: float  # signed coin delta this leg adds


@dataclass(frozen=True, slots=True)
class Route:
    legs: tuple[Leg, ...]
    costs: tuple[CandidateCost, ...]
    unrouted_coin: float  # what no candidate had room for (signed)

    def as_dict(self) -> dict[str, Any]:
        return {
            "chosen": [
                {"account": g.key[0], "symbol": g.key[1], "coin": g.coin} for g in self.legs
            ],
            "candidates": [c.as_dict() for c in self.costs],
            "unrouted_coin": self.unrouted_coin,
        }


def room_coin(position_coin: float, limit_coin: float, sign: int) -> float:
    """Coin the position may still move by on side `sign` and stay within |limit|."""
    return max(limit_coin - sign * position_coin, 0.0)


def _no_room(c: Candidate, sign: int, lot_coin: float) -> bool:
    return room_coin(c.position_coin, c.limit_coin, sign) < lot_coin


def basis(ins: Instrument, mid: float | None, index: float, now_ms: int) -> tuple[float, float]:
    """A dated future's basis (mid - index) / index in bps, and annualized as a fraction."""
    if mid is None or index <= 0 or ins.expiry_ms is None:
        return 0.0, 0.0
    b = (mid - index) / index
    left = max(ins.expiry_ms - now_ms, 1.0)
    return b * 10_000.0, b * MS_PER_YEAR / left


def cost_of(
    c: Candidate, gap_coin: float, index: float, horizon_h: float, now_ms: int
) -> CandidateCost:
    """What sending min(|gap|, room) coin of the order to `c` is expected to cost."""
    sign = 1 if gap_coin > 0 else -1
    ins = c.instrument
    room = room_coin(c.position_coin, c.limit_coin, sign)
    size = min(abs(gap_coin), room)
    perp = ins.kind is Kind.PERP
    funding_bps = 0.0
    if perp and c.funding is not None and c.funding_fresh:
        funding_bps = sign * c.funding.per_hour * horizon_h * 10_000.0
    mid = c.book.mid if c.book is not None else None
    b_bps = b_ann = None
    if ins.kind is Kind.FUTURE:
        b_bps, b_ann = basis(ins, mid, index, now_ms)
    half, slip, skipped = _spread_and_slippage(c, sign, size, index)
    skipped = c.blocked or skipped
    fee = ins.taker_fee * 10_000.0
    total = fee + half + slip + funding_bps
    return CandidateCost(
        key=c.key,
        room_coin=room,
        size_coin=size,
        fee_bps=fee,
        half_spread_bps=half,
        slippage_bps=slip,
        funding_bps=funding_bps,
        funding_rate=c.funding.rate if perp and c.funding is not None else None,
        funding=("fresh" if c.funding_fresh else "stale") if perp else "n/a",
        basis_bps=b_bps,
        basis_annual=b_ann,
        total_bps=total,
        cost_usd=total / 10_000.0 * size * index,
        skipped=skipped,
    )


def _spread_and_slippage(
    c: Candidate, sign: int, size_coin: float, index: float
) -> tuple[float, float, str | None]:
    """Half-spread and the slippage beyond it (bps of mid) of taking `size_coin` (at least one
    lot) from the book, and why the candidate is skipped, if it is."""
    ins, book = c.instrument, c.book
    lot_coin = ins.amount_step * ins.coin_delta_per_contract(index)
    mid = book.mid if book is not None else None
    if book is None or mid is None or book.best_bid is None or book.best_ask is None:
        return 0.0, 0.0, "no_book" if c.quote_fresh else "stale_market_data"
    contracts = max(size_coin, lot_coin) / ins.coin_delta_per_contract(mid)
    walk = walk_book(book, Side.BUY if sign > 0 else Side.SELL, contracts)
    if walk is None:
        return 0.0, 0.0, "no_book"
    half = (book.best_ask - book.best_bid) / 2.0 / mid * 10_000.0
    slip = max(walk.slippage_bps - half, 0.0)
    if not c.quote_fresh:
        return half, slip, "stale_market_data"
    return half, slip, ("at_limit" if _no_room(c, sign, lot_coin) else None)


def route(
    gap_coin: float,
    index: float,
    candidates: Sequence[Candidate],
    horizon_h: float,
    now_ms: int,
) -> Route:
    """Split `gap_coin` over the candidates, cheapest first, each up to its room. Ties go to
    the order the candidates are listed in (the config's order)."""
    costs = tuple(cost_of(c, gap_coin, index, horizon_h, now_ms) for c in candidates)
    usable = sorted(
        (i for i, k in enumerate(costs) if k.skipped is None), key=lambda i: (costs[i].total_bps, i)
    )
    left = abs(gap_coin)
    sign = 1.0 if gap_coin > 0 else -1.0
    legs = []
    for i in usable:
        if left <= 0:
            break
        take = min(left, costs[i].room_coin)
        legs.append(Leg(costs[i].key, sign * take))
        left -= take
    return Route(tuple(legs), costs, sign * left)
