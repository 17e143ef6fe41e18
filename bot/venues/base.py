"""The venue interface: the simulated exchange and every ccxt exchange implement it.

Errors are classified here once, so the executor never inspects exchange-specific exceptions:
- VenueRejected: definitive, the venue said no (bad order, funds, auth, symbol). Never retried.
- VenueTransient: a read or a cancel may be retried with backoff.
- VenueAmbiguous: a create whose outcome is unknown (timeout or network error after sending).
  It is resolved by `fetch_order(client_id)`, never by sending again.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from bot.core.instruments import Instrument
from bot.core.market import FundingRate, OrderBook, Ticker
from bot.core.orders import Fill, OrderRequest, OrderUpdate, PositionReport


class VenueError(Exception):
    """Base of every error a venue raises."""


class VenueRejected(VenueError):
    """The venue refused the request. Retrying the same request will not help."""


class VenueTransient(VenueError):
    """A network error, rate limit or outage. Safe to retry a read after a backoff."""


class VenueAmbiguous(VenueError):
    """An order may or may not have reached the venue. Look it up by client id."""


class VenueNotSupported(VenueError):
    """The venue lacks this call or stream (e.g. Deribit has no position stream)."""


class Venue(Protocol):
    name: str  # account name from the config

    async def connect(self) -> None: ...

    async def close(self) -> None: ...

    async def load_instruments(self) -> Mapping[str, Instrument]: ...

    # Streams: each call waits for the next update (ccxt.pro style); callers bound it with a
    # timeout and call again to resubscribe after an error.
    async def watch_ticker(self, symbol: str) -> Ticker: ...

    async def watch_order_book(self, symbol: str) -> OrderBook: ...

    async def watch_orders(self) -> Sequence[OrderUpdate]: ...

    async def watch_fills(self) -> Sequence[Fill]: ...

    async def watch_positions(self) -> Sequence[PositionReport]: ...

    # REST-style reads
    async def fetch_ticker(self, symbol: str) -> Ticker: ...

    async def fetch_order_book(self, symbol: str) -> OrderBook: ...

    async def fetch_positions(self) -> Sequence[PositionReport]: ...

    async def fetch_balances(self) -> Mapping[str, float]: ...

    async def fetch_open_orders(self) -> Sequence[OrderUpdate]: ...

    async def fetch_funding_rate(self, symbol: str) -> FundingRate:
        """A perp's current funding rate (routing compares venues with it)."""
        ...

    async def fetch_order(self, client_id: str, symbol: str) -> OrderUpdate | None:
        """The order with this client id, or None when the venue has never seen it."""
        ...

    async def fetch_fills(self, client_id: str, symbol: str) -> Sequence[Fill]: ...

    # Orders
    async def create_order(self, request: OrderRequest) -> OrderUpdate: ...

    async def cancel_order(self, client_id: str, symbol: str) -> OrderUpdate | None: ...
