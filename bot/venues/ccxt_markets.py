"""ccxt market dicts (as `load_markets` returns them) mapped to the core's `Instrument`.

Pure functions: no exchange object, no I/O. What the mapping has to know about ccxt:
- `precision` holds steps under TICK_SIZE (binance, bybit, okx, deribit in ccxt 4.5) but numbers of
  decimal places under DECIMAL_PLACES (older exchange classes): the mode decides how to read it.
  Read in the wrong mode, "3 decimals" becomes a 3 BTC lot: the plausibility rules refuse that.
- ccxt reports numbers as floats, or as strings in its recorded static data: accept both.
- What one book contract is and how ccxt counts amounts differ per exchange and market class;
  `ccxt_profiles` holds that as data, and `MappedMarket.venue_per_contract` is the factor
  between the two (venue amount = book contracts x factor), used both ways by the venue.
- Deribit lists perpetuals with an expiry in the year 3000: a perp has no expiry.
- OKX and Deribit leave `limits.cost.min` empty: for inverse contracts the minimum notional is
  fixed in USD (min amount x contract size); for linear ones it depends on the price, so the
  minimum amount is the check.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import structlog

from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.venues.ccxt_profiles import (
    DEFAULT_PROFILE,
    AmountUnit,
    ExchangeProfile,
    amount_unit,
    profile_for,
)

log = structlog.get_logger(__name__)

# ccxt.base.decimal_to_precision counting modes (copied so this module needs no ccxt import).
DECIMAL_PLACES = 2
SIGNIFICANT_DIGITS = 3
TICK_SIZE = 4

# Plausibility bounds. Real contracts span 1e-4 BTC (Deribit spot lot) to 1e7 PEPE (OKX swap);
# inverse contracts are 1 to 100 USD. Far outside these, the numbers were misread.
CONTRACT_COIN_RANGE = (1e-8, 1e8)
CONTRACT_USD_RANGE = (0.01, 10_000.0)
# Largest lot (smallest order step) worth trading a hedge in, in USD at the current price.
MAX_LOT_USD = 50_000.0

_KINDS = {"spot": Kind.SPOT, "swap": Kind.PERP, "future": Kind.FUTURE, "option": Kind.OPTION}

Problem = tuple[str, str, str]  # (field, value, rule), as ConfigError lists them


class UnmappableMarket(ValueError):
    """The market lacks what an Instrument needs (or is a kind the core does not trade)."""


class ImplausibleMarket(UnmappableMarket):
    """The market's numbers break a plausibility rule: refused, never traded."""

    def __init__(self, symbol: str, problems: list[Problem]) -> None:
        self.symbol = symbol
        self.problems = problems
        super().__init__("; ".join(f"{f}: {rule} (got {v})" for f, v, rule in problems))


@dataclass(frozen=True, slots=True)
class MappedMarket:
    instrument: Instrument
    venue_per_contract: float  # venue amount = book contracts x this
    unit: AmountUnit | None  # None for spot (always coin)


@dataclass
class MarketMap:
    instruments: dict[str, Instrument] = field(default_factory=dict)
    venue_per_contract: dict[str, float] = field(default_factory=dict)
    refused: dict[str, list[Problem]] = field(default_factory=dict)


def _num(value: Any) -> float | None:
    if value is None or value == "" or isinstance(value, bool):
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


def contract_value(market: Mapping[str, Any], profile: ExchangeProfile) -> float:
    """What one venue contract is worth (coin for linear and options, USD for inverse)."""
    info = market.get("info")
    if profile.contract_value_info and isinstance(info, Mapping):
        factors = [_num(info.get(key)) for key in profile.contract_value_info]
        if all(f is not None for f in factors):
            return math.prod(f for f in factors if f is not None)
    size = _num(market.get("contractSize"))
    return 1.0 if size is None else size


def _div(a: float, b: float) -> float:
    """a / b in decimal, so 0.0001 BTC / 0.001 BTC is 0.1 contracts, not 0.09999999999999999."""
    return a if b == 1.0 else float(Decimal(repr(a)) / Decimal(repr(b)))


def _fmt(x: float | None) -> str:
    return "none" if x is None else f"{x:.10g}"


def _check(
    kind: Kind,
    inverse: bool,
    value: float,
    lot: float | None,
    minimum: float | None,
    maximum: float | None,
    unit: str,
) -> list[Problem]:
    """Plausibility rules on the venue's own numbers (value per contract, lot, min, max)."""
    problems: list[Problem] = []
    in_usd = inverse and kind is not Kind.OPTION
    low, high = CONTRACT_USD_RANGE if in_usd else CONTRACT_COIN_RANGE
    if not math.isfinite(value) or not low <= value <= high:
        problems.append(
            (
                "contract_value",
                f"{_fmt(value)} {'USD' if in_usd else 'coin'}",
                f"a contract is worth between {low:g} and {high:g} {'USD' if in_usd else 'coin'}",
            )
        )
    if lot is None or not math.isfinite(lot) or lot <= 0:
        problems.append(("lot", _fmt(lot), "the amount step must be a number > 0"))
        return problems
    if minimum is not None and minimum > 0:
        ratio = minimum / lot
        if ratio < 1 - 1e-9 or abs(ratio - round(ratio)) > 1e-6 * max(1.0, ratio):
            problems.append(
                (
                    "lot",
                    f"lot {_fmt(lot)} {unit}, min amount {_fmt(minimum)} {unit}",
                    "the minimum amount must be a whole number of lots (a lot above the "
                    "minimum means the precision was misread)",
                )
            )
    if maximum is not None and maximum > 0 and lot > maximum:
        problems.append(
            (
                "lot",
                f"lot {_fmt(lot)} {unit}, max amount {_fmt(maximum)} {unit}",
                "the lot must not exceed the maximum amount",
            )
        )
    return problems


def map_market(
    market: Mapping[str, Any],
    precision_mode: int = TICK_SIZE,
    profile: ExchangeProfile = DEFAULT_PROFILE,
) -> MappedMarket:
    """Map one ccxt market. Raises UnmappableMarket for combos, margin pairs and incomplete data,
    ImplausibleMarket when its numbers break a plausibility rule."""
    symbol, kind, base = _identity(market)
    inverse = bool(market.get("inverse")) and kind is not Kind.SPOT
    settlement = Settlement.INVERSE if inverse else Settlement.LINEAR
    unit = amount_unit(profile, kind.value, inverse)
    # Spot amounts are coin everywhere (Deribit's spot contractSize is its lot, not a value).
    value = 1.0 if unit is None else contract_value(market, profile)

    venue_lot, venue_min, venue_max, price_step = _steps(market, precision_mode, symbol)
    # Book contract and the factor to the venue amount, by the venue's amount unit.
    if unit == "quote":
        # Amounts are USD: a book contract is 1 USD, and the venue's contract size is the lot.
        venue_lot = max(venue_lot, value)
        venue_min = max(venue_min or 0.0, venue_lot)
        contract_size, per_contract = 1.0, 1.0
    elif unit == "base":
        contract_size, per_contract = value, value
    else:
        contract_size, per_contract = value, 1.0
    label = {"base": "coin", "quote": "USD", "contracts": "contracts"}.get(unit or "", "coin")
    problems = _check(kind, inverse, value, venue_lot, venue_min, venue_max, label)
    if problems:
        raise ImplausibleMarket(symbol, problems)

    amount_step = _div(venue_lot, per_contract)
    min_amount = _div(venue_min or 0.0, per_contract)
    min_cost = _limit(market, "cost", "min")
    if min_cost is None:
        min_cost = min_amount * contract_size if inverse and kind is not Kind.OPTION else 0.0

    expiry_ms, strike, option_type = _terms(market, kind)
    maker = _num(market.get("maker"))
    taker = _num(market.get("taker"))
    try:
        instrument = Instrument(
            symbol=symbol,
            underlying=base,
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
    return MappedMarket(instrument, per_contract, unit)


def _identity(market: Mapping[str, Any]) -> tuple[str, Kind, str]:
    """(symbol, kind, underlying) of a market the core trades; UnmappableMarket otherwise."""
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
    return str(symbol), kind, str(base).upper()


def _steps(
    market: Mapping[str, Any], precision_mode: int, symbol: str
) -> tuple[float, float | None, float | None, float]:
    """(lot, min amount, max amount, price step) in the venue's units, as the venue gives them;
    UnmappableMarket when the lot or the price step is missing."""
    precision = market.get("precision") or {}
    venue_min = _limit(market, "amount", "min")
    venue_max = _limit(market, "amount", "max")
    venue_lot = precision_step(precision.get("amount"), precision_mode) or venue_min
    price_step = precision_step(precision.get("price"), precision_mode)
    price_step = price_step or _limit(market, "price", "min")
    if venue_lot is None or price_step is None:
        raise UnmappableMarket(f"{symbol}: no amount or price step")
    return venue_lot, venue_min, venue_max, price_step


def _terms(
    market: Mapping[str, Any], kind: Kind
) -> tuple[int | None, float | None, OptionType | None]:
    """(expiry ms, strike, option type) where the kind has them."""
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
    return expiry_ms, strike, option_type


def instrument_from_market(
    market: Mapping[str, Any], precision_mode: int = TICK_SIZE, exchange_id: str = ""
) -> Instrument:
    """Map one ccxt market to an Instrument (see map_market)."""
    return map_market(market, precision_mode, profile_for(exchange_id)).instrument


def map_markets(
    markets: Iterable[Mapping[str, Any]],
    precision_mode: int = TICK_SIZE,
    exchange_id: str = "",
    *,
    active_only: bool = True,
) -> MarketMap:
    """Map every market the core can use, keyed by ccxt symbol. Markets the core does not trade
    are skipped (debug log: an exchange lists hundreds of combos and margin pairs); implausible
    ones are kept out and listed in `refused` with their numbers."""
    profile = profile_for(exchange_id)
    result = MarketMap()
    for market in markets:
        if active_only and market.get("active") is False:
            continue
        try:
            mapped = map_market(market, precision_mode, profile)
        except ImplausibleMarket as e:
            result.refused[e.symbol] = e.problems
            log.debug("venue.market_refused", exchange=exchange_id, reason=str(e))
            continue
        except UnmappableMarket as e:
            log.debug("venue.market_skipped", exchange=exchange_id, reason=str(e))
            continue
        symbol = mapped.instrument.symbol
        result.instruments[symbol] = mapped.instrument
        result.venue_per_contract[symbol] = mapped.venue_per_contract
    return result


def instruments_from_markets(
    markets: Iterable[Mapping[str, Any]],
    precision_mode: int = TICK_SIZE,
    exchange_id: str = "",
    *,
    active_only: bool = True,
) -> dict[str, Instrument]:
    """The instruments of map_markets alone."""
    return map_markets(markets, precision_mode, exchange_id, active_only=active_only).instruments


def lot_value_problems(instrument: Instrument, price: float) -> list[Problem]:
    """A delta-one lot worth more than MAX_LOT_USD at `price` cannot hedge finely: refused.
    (Options are left out: their lot is judged by premium, not by the underlying's notional.)"""
    if instrument.kind is Kind.OPTION or not (price > 0 and math.isfinite(price)):
        return []
    lot_usd = instrument.notional_usd(instrument.amount_step, price)
    if lot_usd <= MAX_LOT_USD:
        return []
    return [
        (
            "lot",
            f"{_fmt(instrument.amount_step)} contracts x {_fmt(instrument.contract_size)} = "
            f"{lot_usd:.0f} USD at price {_fmt(price)}",
            f"one lot must be worth at most {MAX_LOT_USD:.0f} USD",
        )
    ]


def settle_currency(market: Mapping[str, Any]) -> str | None:
    """The currency a market settles in (None for spot)."""
    settle = market.get("settle")
    return str(settle) if settle else None
