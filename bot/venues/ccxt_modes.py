"""The account's position mode and margin mode, read at start and compared with the config.

A mismatch refuses to start (ConfigError: exit 2) naming the setting, the account's value and
what to do; the bot never switches a mode itself (that would change how every order and
position counts). Unset keys are not checked. Paper accounts have no keys to read with.
Exchanges whose mode ccxt cannot read are logged as unverified, and start.
"""

from __future__ import annotations

from collections.abc import Collection
from typing import TYPE_CHECKING, Any

import structlog

from bot.config import ConfigError
from bot.venues.base import VenueError

if TYPE_CHECKING:
    from bot.venues.ccxt_venue import CcxtVenue

log = structlog.get_logger(__name__)


class Unsupported(Exception):
    """ccxt cannot read this mode on this exchange."""


async def position_mode(venue: CcxtVenue, symbols: Collection[str]) -> str:
    if venue.exchange_id == "deribit":
        return "oneway"  # Deribit nets every position per instrument: one-way only
    if not venue.has("fetchPositionMode"):
        raise Unsupported
    symbol = min(symbols) if symbols else None
    got: dict[str, Any] = await venue._read(
        "fetch_position_mode", venue.exchange.fetch_position_mode, symbol
    )
    return "hedge" if got.get("hedged") else "oneway"


async def margin_modes(venue: CcxtVenue, symbols: Collection[str]) -> dict[str, str]:
    """symbol -> "cross" or "isolated", for the derivatives the config uses."""
    if not venue.has("fetchMarginMode"):
        raise Unsupported
    out: dict[str, str] = {}
    for symbol in sorted(symbols):
        ins = venue.listed(symbol)
        if ins is None or ins.kind.value == "spot":
            continue
        got: dict[str, Any] = await venue._read(
            "fetch_margin_mode", venue.exchange.fetch_margin_mode, symbol
        )
        out[symbol] = str(got.get("marginMode"))
    return out


async def check_modes(venue: CcxtVenue, symbols: Collection[str]) -> None:
    cfg, name = venue.config, venue.name
    wanted = {"position_mode": cfg.position_mode, "margin_mode": cfg.margin_mode}
    for field, want in wanted.items():
        if want is None:
            log.info("venue.mode_unchecked", account=name, field=field, reason="not configured")
    if cfg.mode == "paper" or not any(wanted.values()):
        if any(wanted.values()):
            log.info("venue.mode_unchecked", account=name, reason="paper: no keys to read with")
        return
    problems: list[tuple[str, str, str]] = []
    path = f"accounts.{name}"
    try:
        if cfg.position_mode is not None:
            have = await _or_unsupported(venue, "position_mode", position_mode(venue, symbols))
            if have is not None and have != cfg.position_mode:
                problems.append(_mismatch(venue, "position_mode", cfg.position_mode, have))
            elif have is not None:
                log.info("venue.mode_checked", account=name, position_mode=have)
        if cfg.margin_mode is not None:
            modes = await _or_unsupported(venue, "margin_mode", margin_modes(venue, symbols))
            for symbol, have in sorted((modes or {}).items()):
                if have != cfg.margin_mode:
                    problems.append(_mismatch(venue, "margin_mode", cfg.margin_mode, have, symbol))
            if modes and not problems:
                log.info("venue.mode_checked", account=name, margin_mode=cfg.margin_mode)
    except VenueError as e:
        problems.append((f"{path}.position_mode/margin_mode", "?", f"could not be read: {e}"))
    for field, value, rule in problems:
        log.error("venue.mode_mismatch", account=name, field=field, value=value, rule=rule)
    if problems:
        raise ConfigError(path, problems)


async def _or_unsupported(venue: CcxtVenue, field: str, read: Any) -> Any:
    try:
        return await read
    except Unsupported:
        log.warning(
            "venue.mode_unverified",
            account=venue.name,
            field=field,
            exchange=venue.exchange_id,
            reason="ccxt cannot read it on this exchange",
        )
        return None


def _mismatch(
    venue: CcxtVenue, field: str, want: str, have: str, symbol: str | None = None
) -> tuple[str, str, str]:
    where = f"{venue.exchange_id} account" + (f" ({symbol})" if symbol else "")
    return (
        f"accounts.{venue.name}.{field}",
        want,
        f"the {where} is in {field.replace('_', ' ')} {have!r}: change it at the exchange or "
        f"set {field} = {have!r}; the bot never switches it",
    )
