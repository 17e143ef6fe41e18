"""Pure pricing for the executor: book walks, the slippage fit, and the expected cost rule.

No I/O, no clock. Amounts are contracts; prices are the instrument's quote prices. Slippage is
in basis points of the mid and positive when worse for us (a buy above mid, a sell below).

The average fill price of a walk is the contract-weighted mean of the level prices. For inverse
contracts the exact coin-weighted average is harmonic; the difference is second order in the
slippage (well below 0.01 bp at the caps used here), so one formula serves both.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from bot.core.market import BookLevel, OrderBook
from bot.core.orders import Side

_EPS = 1e-12
SECONDS_PER_YEAR = 365.0 * 86_400.0


@dataclass(frozen=True, slots=True)
class Walk:
    """What taking `amount` from one side of a book would do, at the book as it is."""

    requested: float
    amount: float  # contracts the visible levels can fill (<= requested)
    avg_price: float | None  # contract-weighted average of those fills; None when nothing fills
    worst_price: float | None  # price of the last level touched: the marketable limit
    mid: float
    slippage_bps: float  # avg vs mid, positive when worse for us; 0 when nothing fills
    depth: float  # every contract visible on the side we take

    @property
    def complete(self) -> bool:
        return self.amount >= self.requested - _EPS


def _far_side(book: OrderBook, side: Side) -> Sequence[BookLevel]:
    # A buy takes the asks, a sell the bids; both lists are best first.
    return book.asks if side is Side.BUY else book.bids


def slippage_bps(side: Side, price: float, mid: float) -> float:
    """How much worse than mid `price` is for `side`, in bps of mid (negative: better)."""
    return side.sign * (price - mid) / mid * 10_000.0


def cap_price(side: Side, mid: float, max_slippage_bps: float) -> float:
    """The price that is exactly `max_slippage_bps` worse than mid for `side`."""
    return mid * (1.0 + side.sign * max_slippage_bps / 10_000.0)


def walk_book(book: OrderBook, side: Side, amount: float) -> Walk | None:
    """Take `amount` from the book level by level. None when the book has no mid (a side is
    empty): then there is nothing to measure slippage against."""
    mid = book.mid
    if mid is None or mid <= 0 or amount <= 0:
        return None
    levels = _far_side(book, side)
    depth = sum(max(lv.amount, 0.0) for lv in levels)
    left, filled, notional, worst = amount, 0.0, 0.0, None
    for lv in levels:
        if left <= _EPS:
            break
        if lv.amount <= 0:
            continue
        take = min(lv.amount, left)
        filled += take
        notional += take * lv.price
        worst = lv.price
        left -= take
    avg = notional / filled if filled > 0 else None
    slip = slippage_bps(side, avg, mid) if avg is not None else 0.0
    return Walk(amount, min(filled, amount), avg, worst, mid, slip, depth)


def fit_slippage(
    book: OrderBook, side: Side, amount: float, max_slippage_bps: float, step: float
) -> Walk | None:
    """The largest walk of at most `amount`, on the lot `step`, whose expected average price is
    within `max_slippage_bps` of mid. The average only worsens as more levels are taken, so the
    fit takes whole levels while the average stays inside the cap, then the part of the next
    level that keeps it there: with S, Q the notional and contracts so far, p the level price and
    c the cap price, x more contracts keep (S + p x) / (Q + x) inside c while
    x <= (c Q - S) / (p - c) for a buy (signs flip for a sell).
    None when the book has no mid."""
    full = walk_book(book, side, amount)
    if full is None:
        return None
    if full.slippage_bps <= max_slippage_bps + _EPS or full.amount == 0:
        fitted = _on_step(full.amount, step)
        return full if fitted >= full.amount - _EPS else walk_book_exact(book, side, fitted)
    c = cap_price(side, full.mid, max_slippage_bps)
    s = q = 0.0
    for lv in _far_side(book, side):
        if lv.amount <= 0:
            continue
        room = amount - q
        if room <= _EPS:
            break
        take = min(lv.amount, room)
        if slippage_bps(side, (s + take * lv.price) / (q + take), full.mid) <= max_slippage_bps:
            s += take * lv.price
            q += take
            continue
        # Only part of this level fits; (p - c) and (c Q - S) carry the side's sign together.
        denom = lv.price - c
        x = (c * q - s) / denom if abs(denom) > _EPS else 0.0
        q += min(max(x, 0.0), take)
        break
    return walk_book_exact(book, side, _on_step(q, step))


def walk_book_exact(book: OrderBook, side: Side, amount: float) -> Walk:
    """walk_book for an amount that may be 0 (a fit that leaves nothing)."""
    mid = book.mid
    assert mid is not None
    if amount <= 0:
        depth = sum(max(lv.amount, 0.0) for lv in _far_side(book, side))
        return Walk(0.0, 0.0, None, None, mid, 0.0, depth)
    walk = walk_book(book, side, amount)
    assert walk is not None
    return walk


def _on_step(amount: float, step: float) -> float:
    """Truncate to the lot step (never round up past what fits)."""
    if step <= 0:
        return amount
    n = math.floor(amount / step + 1e-9)
    return round(n * step, 12)


# ---- expected cost ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Cost:
    """Expected cost of one order and the risk it removes, all in USD."""

    notional_usd: float
    fee_usd: float
    slippage_usd: float
    risk_removed_usd: float  # one-sigma move of the delta this order removes, over the horizon

    @property
    def cost_usd(self) -> float:
        return self.fee_usd + self.slippage_usd

    @property
    def cost_bps(self) -> float:
        return self.cost_usd / self.notional_usd * 10_000.0 if self.notional_usd > 0 else 0.0

    def as_dict(self) -> dict[str, float]:
        return {
            "notional_usd": self.notional_usd,
            "fee_usd": self.fee_usd,
            "slippage_usd": self.slippage_usd,
            "cost_usd": self.cost_usd,
            "cost_bps": self.cost_bps,
            "risk_removed_usd": self.risk_removed_usd,
        }


def expected_move(sigma_annual: float, horizon_s: float) -> float:
    """One-sigma relative move over the horizon: sigma x sqrt(horizon in years)."""
    return sigma_annual * math.sqrt(max(horizon_s, 0.0) / SECONDS_PER_YEAR)


def expected_cost(
    notional_usd: float,
    fee_rate: float,
    slippage_bps: float,
    delta_removed_usd: float,
    sigma_annual: float,
    horizon_s: float,
) -> Cost:
    """Fee and slippage (a price better than mid counts as 0, never as income) against the risk
    the order removes: |delta removed| x expected move over the horizon."""
    notional = abs(notional_usd)
    return Cost(
        notional_usd=notional,
        fee_usd=notional * max(fee_rate, 0.0),
        slippage_usd=notional * max(slippage_bps, 0.0) / 10_000.0,
        risk_removed_usd=abs(delta_removed_usd) * expected_move(sigma_annual, horizon_s),
    )


def cost_refusal(
    cost: Cost, max_cost_bps: float | None, cost_risk_ratio: float | None
) -> tuple[str, dict[str, float]] | None:
    """(rule, numbers) when the order costs too much, else None. Rules: `max_cost_bps` (cost in
    bps of notional above the cap) and `cost_vs_risk` (cost above ratio x risk removed)."""
    if max_cost_bps is not None and cost.cost_bps > max_cost_bps:
        return "max_cost_bps", {**cost.as_dict(), "max_cost_bps": max_cost_bps}
    if cost_risk_ratio is not None and cost.cost_usd > cost_risk_ratio * cost.risk_removed_usd:
        return "cost_vs_risk", {**cost.as_dict(), "cost_risk_ratio": cost_risk_ratio}
    return None


# ---- slicing ---------------------------------------------------------------------------------


def twap_slices(amount: float, depth: float, fraction: float, max_slices: int, step: float) -> int:
    """How many slices an order of `amount` needs so that each takes at most `fraction` of the
    visible depth (1 when it already fits, at most `max_slices`, never slices below one lot)."""
    if amount <= 0:
        return 1
    per = fraction * depth
    n = max_slices if per <= 0 else math.ceil(amount / per - 1e-9)
    if step > 0:
        n = min(n, max(1, math.floor(amount / step + 1e-9)))
    return max(1, min(n, max_slices))


def touch_price(book: OrderBook, side: Side) -> float | None:
    """Where a post-only order joins the queue: best bid for a buy, best ask for a sell."""
    return book.best_bid if side is Side.BUY else book.best_ask
