"""ccxt market dicts (as `load_markets` returns them) mapped to the core's `Instrument`.

Pure functions: no exchange object, no I/O. What the mapping has to know about ccxt:
- `precision` holds steps under TICK_SIZE (binance, bybit, okx, deribit in ccxt 4.5) but numbers of
  decimal places under DECIMAL_PLACES (older exchange classes): the mode decides how to read it.
- ccxt reports numbers as floats, or as strings in its recorded static data: accept both.
- Deribit takes inverse future amounts in USD (orders, positions and books alike) while ccxt
  reports `contractSize` 10: one of our contracts there is 1 USD, and ccxt's contract size becomes
  the amount step, so no amount ever needs rescaling between the core and the venue.
- Deribit lists perpetuals with an expiry in the year 3000: a perp has no expiry.
- OKX and Deribit leave `limits.cost.min` empty: for inverse contracts the minimum notional is
  fixed in USD (min amount x contract size); for linear ones it depends on the price, so the
  minimum amount is the check.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import structlog

from bot.core.instruments import Instrument, Kind, OptionType, Settlement

log = structlog.get_logger(__name__)

# ccxt.base.decimal_to_precision counting modes (copied so this module needs no ccxt import).
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

# Venues whose API counts inverse future/perp amounts in USD rather than in contracts.
USD_AMOUNT_VENUES = frozenset({"deribit"})

_KINDS = {"spot": Kind.SPOT, "swap": Kind.PERP, "future": Kind.FUTURE, "option": Kind.OPTION}


class UnmappableMarket(ValueError):
    """The market lacks what an Instrument needs (or is a kind the core does not trade)."""


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        return float(value)
    except (TypeError, ValueError):
        return None


def precision_step(value: Any, precision_mode: int) -> float | None:
    """A ccxt precision value as a step size (0.01), whatever the exchange's counting mode."""
    number = _num(value)
    if number is None:
        return None
    if precision_mode == TICK_SIZE:
        return number if number > 0 else None
    if precision_mode == DECIMAL_PLACES:
        return 10.0 ** (-int(number))
    # Significant digits say nothing about a fixed step; callers fall back to the minimums.
    return None


def _limit(market: Mapping[str, Any], name: str, bound: str) -> float | None:
    limits = market.get("limits") or {}
    return _num((limits.get(name) or {}).get(bound))


def instrument_from_market(
    market: Mapping[str, Any], precision_mode: int = TICK_SIZE, exchange_id: str = ""
) -> Instrument:
    """Map one ccxt market. Raises UnmappableMarket for combos, margin pairs and incomplete data."""
    symbol = market.get("symbol")
    mtype = market.get("type")
    kind = _KINDS.get(str(mtype))
    if not symbol or kind is None:
        raise UnmappableMarket(f"{symbol}: market type {mtype!r} is not traded by the core")
    if kind is not Kind.SPOT and ":" not in str(symbol):
        # ccxt names every standard derivative BASE/QUOTE:SETTLE; combos and spreads keep the
        # exchange id as symbol (Deribit's BTC-FS-27JUN25_PERP) and are not hedge instruments.
        raise UnmappableMarket(f"{symbol}: not a single-leg derivative")
    base = market.get("base")
    if not base:
        raise UnmappableMarket(f"{symbol}: no base currency")

    inverse = bool(market.get("inverse")) and kind is not Kind.SPOT
    settlement = Settlement.INVERSE if inverse else Settlement.LINEAR
    contract_size = 1.0 if kind is Kind.SPOT else (_num(market.get("contractSize")) or 1.0)

    precision = market.get("precision") or {}
    amount_step = precision_step(precision.get("amount"), precision_mode)
    price_step = precision_step(precision.get("price"), precision_mode)
    min_amount = _limit(market, "amount", "min")
    amount_step = amount_step or min_amount
    price_step = price_step or _limit(market, "price", "min")
    if amount_step is None or price_step is None:
        raise UnmappableMarket(f"{symbol}: no amount or price step")

    usd_amounts = inverse and kind is not Kind.OPTION and exchange_id in USD_AMOUNT_VENUES
    if usd_amounts:
        # Amounts are USD: a contract is 1 USD, and ccxt's contract size is the lot.
        amount_step = max(amount_step, contract_size)
        contract_size = 1.0
    min_amount = max(min_amount or 0.0, amount_step if usd_amounts else 0.0)

    min_cost = _limit(market, "cost", "min")
    if min_cost is None:
        min_cost = min_amount * contract_size if inverse and kind is not Kind.OPTION else 0.0

    expiry_ms: int | None = None
    strike: float | None = None
    option_type: OptionType | None = None
    if kind in (Kind.FUTURE, Kind.OPTION):
        expiry = _num(market.get("expiry"))
        expiry_ms = int(expiry) if expiry is not None else None
    if kind is Kind.OPTION:
        strike = _num(market.get("strike"))
        raw_type = str(market.get("optionType") or "").lower()
        option_type = OptionType(raw_type) if raw_type in ("call", "put") else None

    maker = _num(market.get("maker"))
    taker = _num(market.get("taker"))
    try:
        return Instrument(
            symbol=str(symbol),
            underlying=str(base).upper(),
            kind=kind,
            settlement=settlement,
            contract_size=contract_size,
            quote=str(market.get("quote") or "USD"),
            expiry_ms=expiry_ms,
            strike=strike,
            option_type=option_type,
            amount_step=amount_step,
            price_step=price_step,
            min_amount=min_amount,
            min_cost=min_cost,
            maker_fee=maker if maker is not None else 0.0002,
            taker_fee=taker if taker is not None else 0.0005,
        )
    except ValueError as e:
        raise UnmappableMarket(str(e)) from e


def instruments_from_markets(
    markets: Iterable[Mapping[str, Any]],
    precision_mode: int = TICK_SIZE,
    exchange_id: str = "",
    *,
    active_only: bool = True,
) -> dict[str, Instrument]:
    """Map every market the core can use, keyed by ccxt symbol; the rest are skipped (logged at
    debug level: an exchange lists hundreds of combos and margin pairs we never trade)."""
    result: dict[str, Instrument] = {}
    for market in markets:
        if active_only and market.get("active") is False:
            continue
        try:
            instrument = instrument_from_market(market, precision_mode, exchange_id)
        except UnmappableMarket as e:
            log.debug("venue.market_skipped", exchange=exchange_id, reason=str(e))
            continue
        result[instrument.symbol] = instrument
    return result


def settle_currency(market: Mapping[str, Any]) -> str | None:
    """The currency a market settles in (None for spot)."""
    settle = market.get("settle")
    return str(settle) if settle else None
