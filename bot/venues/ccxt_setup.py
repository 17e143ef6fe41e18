"""Building a configured ccxt.pro exchange object, and checking the markets the config uses.

Modes: paper (no keys), testnet (`set_sandbox_mode(True)`, or the demo system where the profile
says the sandbox refuses private calls), live. URL overrides from the config replace entries of
`exchange.urls['api']` after the mode has picked its URL set, so a proxy (or the test emulator)
wins over both live and test URLs.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from typing import TYPE_CHECKING, Any

import ccxt.pro
import structlog

from bot.config import ConfigError, Settings
from bot.config_accounts import AccountConfig
from bot.core.instruments import Instrument
from bot.venues.base import VenueError, VenueNotSupported
from bot.venues.ccxt_markets import Problem, lot_value_problems
from bot.venues.ccxt_profiles import profile_for

if TYPE_CHECKING:
    from bot.venues.ccxt_venue import CcxtVenue

log = structlog.get_logger(__name__)


def apply_url_overrides(urls_api: dict[str, Any], overrides: Mapping[str, str]) -> None:
    """Replace entries of ccxt's `urls['api']`. A dotted key reaches into a nested entry
    ("ws.linear" on Binance, whose ws URLs are a dict per market type)."""
    for key, url in overrides.items():
        node = urls_api
        *parents, leaf = key.split(".")
        for part in parents:
            child = node.get(part)
            if not isinstance(child, dict):
                raise ValueError(f"urls override {key!r}: no nested entry {part!r}")
            node = child
        if leaf not in node:
            raise ValueError(f"urls override {key!r}: ccxt has no such api url")
        node[leaf] = url


def build_exchange(config: AccountConfig) -> Any:
    """A configured ccxt.pro exchange object (not yet connected)."""
    cls = getattr(ccxt.pro, config.exchange, None)
    if cls is None:
        raise VenueNotSupported(f"ccxt.pro has no exchange {config.exchange!r}")
    params: dict[str, Any] = {
        "enableRateLimit": True,
        "timeout": int(config.request_timeout_s * 1000),
        "options": dict(config.ccxt_options),
    }
    if config.mode != "paper":
        for field in ("api_key", "secret", "password"):
            secret = getattr(config, field)
            if secret is not None:
                params["apiKey" if field == "api_key" else field] = secret.get_secret_value()
    exchange = cls(params)
    if config.mode == "testnet":
        if profile_for(config.exchange).demo_instead_of_sandbox:
            exchange.enable_demo_trading(True)
        else:
            exchange.set_sandbox_mode(True)
    apply_url_overrides(exchange.urls["api"], config.urls)
    return exchange


def symbols_for(settings: Settings, account: str) -> frozenset[str]:
    """The symbols the config trades or holds on this account: their markets must be sound."""
    hedged = {s for h in settings.hedge.values() for a, s in h.lines() if a == account}
    held = {p.symbol for p in settings.positions if p.account == account and p.symbol}
    return frozenset(hedged | held)


async def check_required(venue: CcxtVenue, symbols: Collection[str]) -> None:
    """Refuse to start on an implausible market the config uses, naming its numbers: the
    mapping's refusals, then (with a price) the lot's USD value."""
    problems: list[Problem] = []
    for symbol in sorted(symbols):
        found = list(venue.refused.get(symbol, []))
        instrument = venue.listed(symbol)
        if instrument is not None and not found:
            found = await _lot_value_problems(venue, instrument)
        for field, value, rule in found:
            problems.append((f"{venue.exchange_id} market {symbol!r} {field}", value, rule))
    for path, value, rule in problems:
        log.error(
            "venue.market_implausible", account=venue.name, field=path, value=value, rule=rule
        )
    if problems:
        raise ConfigError(f"accounts.{venue.name}", problems)


async def _lot_value_problems(venue: CcxtVenue, instrument: Instrument) -> list[Problem]:
    """The USD rule needs a price; without one the price-free rules stand alone."""
    try:
        ticker = await venue.fetch_ticker(instrument.symbol)
    except VenueError as e:
        log.warning(
            "venue.lot_check_skipped", account=venue.name, symbol=instrument.symbol, error=str(e)
        )
        return []
    price = ticker.mark or ticker.mid or ticker.last
    return lot_value_problems(instrument, price) if price else []
