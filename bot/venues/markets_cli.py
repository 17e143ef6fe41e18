"""`hedgebot markets`: how each symbol the config uses is counted on its exchange, checked.

Loads each real exchange account's markets (public data), applies the same mapping and
plausibility rules as the daemon's start, and prints per symbol what one book contract is, the
lot and minimum, and the unit and factor of the amount sent to the exchange. Exit 2 (with the
numbers) when a market breaks a rule, as `run` would; nothing is ever sent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from bot.config import ConfigError, Settings, load_settings
from bot.core.instruments import Instrument, Kind
from bot.venues.base import VenueError
from bot.venues.ccxt_profiles import amount_unit

if TYPE_CHECKING:  # ccxt is imported only when the command runs: every CLI start pays otherwise
    from bot.venues.ccxt_venue import CcxtVenue

_UNIT_NAMES = {"base": "coin", "quote": "USD", "contracts": "contracts", None: "coin"}


def describe(venue: CcxtVenue, instrument: Instrument) -> dict[str, Any]:
    unit = amount_unit(venue.profile, instrument.kind.value, instrument.is_inverse)
    in_usd = instrument.is_inverse and instrument.kind is not Kind.OPTION
    return {
        "account": venue.name,
        "exchange": venue.exchange_id,
        "symbol": instrument.symbol,
        "kind": instrument.kind.value,
        "settlement": instrument.settlement.value,
        "contract_size": instrument.contract_size,
        "contract_unit": "USD" if in_usd else instrument.underlying,
        "lot_contracts": instrument.amount_step,
        "min_contracts": instrument.min_amount,
        "venue_amount_unit": _UNIT_NAMES[unit],
        "venue_amount_per_contract": venue.per_contract(instrument.symbol),
    }


async def describe_markets(settings: Settings, extra: set[str]) -> list[dict[str, Any]]:
    from bot.venues.ccxt_setup import symbols_for
    from bot.venues.ccxt_venue import CcxtVenue

    rows: list[dict[str, Any]] = []
    for name, acc in settings.accounts.items():
        if acc.exchange == "sim":
            continue
        wanted = symbols_for(settings, name) | extra
        venue = CcxtVenue(name, acc, required=wanted)
        try:
            instruments = await venue.load_instruments()  # ConfigError on a broken rule
            for symbol in sorted(wanted):
                instrument = instruments.get(symbol)
                if instrument is None:
                    rows.append({"account": name, "symbol": symbol, "listed": False})
                else:
                    rows.append(describe(venue, instrument))
        finally:
            await venue.close()
    return rows


def cmd_markets(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config, args.secrets)
        rows = asyncio.run(describe_markets(settings, set(args.symbol)))
    except ConfigError as e:
        print(e.render(), file=sys.stderr)
        return 2
    except VenueError as e:
        print(f"markets: the exchange could not be read: {e}", file=sys.stderr)
        return 1
    print(json.dumps(rows, indent=2))
    if all(a.exchange == "sim" for a in settings.accounts.values()):
        # Nothing to check: the simulator lists what bot/venues/sim/listing.py says (README).
        print("markets: every account is simulated; nothing to read", file=sys.stderr)
    return 0 if all(row.get("listed", True) for row in rows) else 2
