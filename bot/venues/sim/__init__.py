"""The simulated exchange: a synthetic market, books, matching and an account, behind the Venue
interface. `SimVenue` is the venue; `SimExchange` the deterministic engine inside it."""

from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.listing import build_listing, symbol_for
from bot.venues.sim.state import saved_clock_ms
from bot.venues.sim.venue import SimVenue

__all__ = ["SimExchange", "SimVenue", "build_listing", "saved_clock_ms", "symbol_for"]
