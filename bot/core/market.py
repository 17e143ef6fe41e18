"""Market data as the core sees it: immutable snapshots with explicit timestamps (epoch ms)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class BookLevel:
    price: float
    amount: float  # contracts


@dataclass(frozen=True, slots=True)
class OrderBook:
    symbol: str
    ts_ms: int
    bids: tuple[BookLevel, ...]  # best first
    asks: tuple[BookLevel, ...]  # best first

    @property
    def best_bid(self) -> float | None:
        return self.bids[0].price if self.bids else None

    @property
    def best_ask(self) -> float | None:
        return self.asks[0].price if self.asks else None

    @property
    def mid(self) -> float | None:
        if not self.bids or not self.asks:
            return None
        return (self.bids[0].price + self.asks[0].price) / 2.0

    def problem(self) -> str | None:
        """Why this book cannot be trusted, or None. Venue data is checked before use."""
        inf = math.inf
        for side, levels, better in (("bids", self.bids, 1), ("asks", self.asks, -1)):
            prev = None
            for i, lv in enumerate(levels):
                # one pass, plain comparisons (NaN fails them all): this runs on every book
                price, amount = lv.price, lv.amount
                if not (0 < price < inf and 0 <= amount < inf):
                    return f"{side}[{i}] has price {price} amount {amount}"
                if prev is not None and (price - prev) * better > 0:
                    return f"{side} not sorted best first"
                prev = price
        if self.bids and self.asks and self.bids[0].price > self.asks[0].price:
            return f"crossed: bid {self.bids[0].price} > ask {self.asks[0].price}"
        return None


@dataclass(frozen=True, slots=True)
class Ticker:
    """Top of book plus marks for one instrument.

    `iv` is implied volatility as a fraction (0.61, never 61): venues normalise at their edge.
    Venue greeks, when the venue publishes them, are in the core's units (coin delta per contract).
    """

    symbol: str
    ts_ms: int
    bid: float | None
    ask: float | None
    last: float | None = None
    mark: float | None = None
    index: float | None = None
    iv: float | None = None
    venue_delta: float | None = None

    @property
    def mid(self) -> float | None:
        if self.bid is not None and self.ask is not None:
            return (self.bid + self.ask) / 2.0
        return self.mark if self.mark is not None else self.last

    def problem(self) -> str | None:
        """Why this ticker cannot be trusted, or None. Venue data is checked before use."""
        inf = math.inf
        # one plain comparison a field (NaN fails them all): this runs on every ticker
        bid, ask, last, mark, index = self.bid, self.ask, self.last, self.mark, self.index
        if bid is not None and not 0 < bid < inf:
            return f"bid is {bid}"
        if ask is not None and not 0 < ask < inf:
            return f"ask is {ask}"
        if last is not None and not 0 < last < inf:
            return f"last is {last}"
        if mark is not None and not 0 < mark < inf:
            return f"mark is {mark}"
        if index is not None and not 0 < index < inf:
            return f"index is {index}"
        if bid is not None and ask is not None and bid > ask:
            return f"crossed: bid {bid} > ask {ask}"
        # a fraction: 61.27 here means a venue sent percent and its adapter did not convert
        if self.iv is not None and not (math.isfinite(self.iv) and 0 < self.iv <= 10):
            return f"iv is {self.iv} (expected a fraction)"
        if self.venue_delta is not None and not math.isfinite(self.venue_delta):
            return f"venue_delta is {self.venue_delta}"
        return None


@dataclass(frozen=True, slots=True)
class UnderlyingMarket:
    """What the greeks need for one underlying at one time."""

    underlying: str
    ts_ms: int
    index: float  # USD price of one coin
    vol: float  # implied volatility as a fraction, used where an option has no IV of its own
    rate: float = 0.0
    # implied volatility (fraction) per option line, keyed like the book's lines
    option_iv: dict[tuple[str, str], float] = field(default_factory=dict)
    # proportional cost of trading the hedge instrument, fractions of notional: its taker fee and
    # half the live bid-ask spread relative to mid (cost-aware trigger policies use their sum)
    hedge_fee: float = 0.0
    hedge_half_spread: float = 0.0

    @property
    def hedge_cost(self) -> float:
        """Proportional cost of one hedge trade (fee + half-spread), a fraction."""
        return self.hedge_fee + self.hedge_half_spread


@dataclass(frozen=True, slots=True)
class FundingRate:
    """A perp's current funding rate as the venue states it: `rate` per `interval_h` hours,
    read at `ts_ms` (clock time)."""

    rate: float
    interval_h: float
    ts_ms: int

    @property
    def per_hour(self) -> float:
        return self.rate / self.interval_h if self.interval_h > 0 else 0.0

    def problem(self) -> str | None:
        """Why this rate cannot be used, or None (venue data is checked before use)."""
        if not (math.isfinite(self.rate) and abs(self.rate) <= 0.05):
            return f"rate is {self.rate} (expected within +/-0.05 per interval)"
        if not (math.isfinite(self.interval_h) and 0 < self.interval_h <= 24):
            return f"interval_h is {self.interval_h} (expected in (0, 24])"
        return None


def half_spread(book: OrderBook | None, ticker: Ticker) -> float:
    """Half the bid-ask spread over mid, a fraction: from the live book, else the ticker's top;
    0 when neither has both sides (cost-aware policies then count the fee alone)."""
    bid, ask = (book.best_bid, book.best_ask) if book is not None else (None, None)
    if bid is None or ask is None:
        bid, ask = ticker.bid, ticker.ask
    if bid is None or ask is None or bid + ask <= 0:
        return 0.0
    return max(ask - bid, 0.0) / (ask + bid)
