"""What the synchronous order logic asks the shell to do at a venue (pure values). The driver
(driver.py) carries each one out, bounded by `order_timeout_s`, and feeds its answer back as an
event: Send -> on_create_result, LookUp -> on_lookup_result, Cancel -> on_cancel_result,
FetchFills -> on_fetch_fills_result."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.orders import OrderRequest


@dataclass(frozen=True, slots=True)
class Send:
    """Create the order once; its answer is never followed by a second create."""

    account: str
    request: OrderRequest

    @property
    def client_id(self) -> str:
        return self.request.client_id


@dataclass(frozen=True, slots=True)
class LookUp:
    """Read the order's state at the venue by client id."""

    account: str
    client_id: str
    symbol: str


@dataclass(frozen=True, slots=True)
class Cancel:
    account: str
    client_id: str
    symbol: str


@dataclass(frozen=True, slots=True)
class FetchFills:
    """Read the order's fills at the venue (each trade id is booked once)."""

    account: str
    client_id: str
    symbol: str


Command = Send | LookUp | Cancel | FetchFills
# What an event method returns: the commands to carry out next.
Step = list[Command]
