"""Building a configured ccxt.pro exchange object, and what the config asks of its markets.

Modes: paper (no keys), testnet (`set_sandbox_mode(True)`, or the demo system where the profile
says the sandbox refuses private calls), live. URL overrides from the config replace entries of
`exchange.urls['api']` after the mode has picked its URL set, so a proxy (or the test emulator)
wins over both live and test URLs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import ccxt.pro

from bot.config import AccountConfig, Settings
from bot.venues.base import VenueNotSupported
from bot.venues.ccxt_profiles import profile_for


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
    hedged = {h.instrument for h in settings.hedge.values() if h.account == account}
    held = {p.symbol for p in settings.positions if p.account == account and p.symbol}
    return frozenset(hedged | held)
