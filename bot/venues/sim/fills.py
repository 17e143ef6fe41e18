"""How an order fills on the simulated exchange: taken from the book on arrival, or whole at its
own price once the market trades through it; delivered in one part, or with probability
`partial_fill_rate` in two or three parts a tick apart; each leg booked in the ledger.

Functions over one order and what it touches (the book arithmetic is book.py's, the account
ledger.py's); the exchange keeps the order tables, the generator and the trade counter.
"""

from __future__ import annotations

import numpy as np
import structlog

from bot.core.instruments import Instrument
from bot.core.market import BookLevel
from bot.core.orders import PositionReport
from bot.venues.sim import book as bk
from bot.venues.sim.ledger import Ledger
from bot.venues.sim.quotes import Quotes
from bot.venues.sim.records import Changes, Part, SimOrder

log = structlog.get_logger(__name__)


def take(order: SimOrder, inst: Instrument, quotes: Quotes) -> tuple[BookLevel, ...]:
    """A marketable order on arrival: the legs it takes from the book (which keeps the rest);
    what it does not take rests at its limit."""
    r = order.request
    m = bk.match(quotes.book(r.symbol), r.side, r.amount, r.price, inst.amount_step)
    quotes.set_book(r.symbol, m.book)
    order.resting = round(r.amount - m.filled, 12)
    return m.fills


def traded_through(order: SimOrder, quotes: Quotes) -> tuple[BookLevel, ...]:
    """A resting order the book now crosses: the market traded through it, so all of it fills
    at its own price (as the maker). No legs when the book does not cross."""
    r = order.request
    if not bk.would_cross(quotes.book(r.symbol), r.side, r.price):
        return ()
    legs = (BookLevel(r.price, order.resting),)
    order.resting = 0.0
    return legs


def split(
    rng: np.random.Generator,
    partial_fill_rate: float,
    legs: tuple[BookLevel, ...],
    step: float,
    maker: bool,
) -> list[Part]:
    """One part, or with probability partial_fill_rate two or three delivered a tick apart.
    Always two draws, so whether an order splits does not shift later draws."""
    draw = float(rng.random())
    k = int(rng.integers(2, 4))
    if draw >= partial_fill_rate:
        return [Part(legs=legs, maker=maker)]
    return [Part(legs=p, maker=maker) for p in bk.split(legs, step, k)]


def deliver(
    ledger: Ledger,
    inst: Instrument,
    order: SimOrder,
    part: Part,
    index: float,
    trade_seq: int,
    now_ms: int,
    id_prefix: str = "",
) -> Changes:
    """Book one part: a fill a leg (trade ids `t-<id_prefix><n>`, numbered on from
    `trade_seq`), the order's new state and the position after them."""
    r = order.request
    changes = Changes()
    for n, leg in enumerate(part.legs, start=trade_seq + 1):
        fill = ledger.fill_leg(inst, order, leg, index, part.maker, f"t-{id_prefix}{n}", now_ms)
        changes.fills.append(fill)
        log.debug(
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
    changes.positions.append(PositionReport(r.symbol, ledger.qty(r.symbol), now_ms))
    return changes
