"""Flatten: close the bot's hedge position with reduce-only orders, one at a time, until flat.

An order that fills only in part is followed by another once it settles, up to FLATTEN_ATTEMPTS
orders; then an alert instead of a loop. Options and spot the operator holds are left alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.book import LineKey
from bot.core.orders import OrderIntent, Side

if TYPE_CHECKING:
    from bot.hedger.hedger import Hedger

# A flatten that needs more orders than this stops and raises an alert instead of looping.
FLATTEN_ATTEMPTS = 10


def flatten_step(hedger: Hedger, underlying: str) -> dict[str, Any] | None:
    """One reduce-only order toward a flat hedge position, once nothing is in flight."""
    if hedger.ledger.has_unsettled(underlying):
        return None  # wait for the outcome of what is working
    key, amount = _next_line(hedger, underlying)
    ins, ticker = hedger.catalog[key], hedger.view.tickers.get(key)
    qty = hedger.ledger.positions.get(key, 0.0)
    attempts = hedger.flattening.get(underlying, 0)
    if amount == 0.0 or attempts >= FLATTEN_ATTEMPTS:
        del hedger.flattening[underlying]
        done = amount == 0.0
        hedger.emit(
            "state" if done else "alert",
            "flatten.done" if done else "flatten.gave_up",
            underlying=underlying,
            position=qty,
            orders=attempts,
        )
        return None
    if ticker is None:
        return None
    hedger.flattening[underlying] = attempts + 1
    intent = OrderIntent(
        hedger.executor.new_client_id(),
        underlying,
        key[1],
        Side.of(-qty),
        amount,
        "flatten",
        reduce_only=True,
    )
    hedger.sender.submit(key[0], intent, ticker, ins)
    return {"underlying": underlying, "client_id": intent.client_id, "amount": amount}


def _next_line(hedger: Hedger, underlying: str) -> tuple[LineKey, float]:
    """The first hedge line (reference, then routing candidates) still holding a lot or more,
    and the amount to close; the reference and 0 when every line is flat."""
    lines = hedger.settings.hedge[underlying].lines()
    for key in lines:
        amount = hedger.catalog[key].round_amount(abs(hedger.ledger.positions.get(key, 0.0)))
        if amount > 0.0:
            return key, amount
    return lines[0], 0.0
