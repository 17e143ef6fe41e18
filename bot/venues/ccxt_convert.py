"""ccxt structures (orders, trades, positions, tickers, books, errors) to the core's values.

Pure functions over plain dicts, so they are tested without an exchange. Each copies what it
needs: ccxt.pro hands out live cached objects that change under the caller at the next await.

Amounts: ccxt counts them in the venue's unit (coin, USD or contracts, see ccxt_profiles); the
core counts book contracts. `per_contract` (venue units per book contract, from the market
mapping) converts both ways: to_venue_amount on the way out, to_book_amount on every amount read
back (orders, fills, positions, book levels).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from decimal import Decimal
from typing import Any

import ccxt

from bot.core.instruments import Instrument, Kind
from bot.core.market import BookLevel, FundingRate, OrderBook, Ticker
from bot.core.orders import Fill, OrderStatus, OrderUpdate, PositionReport, Side
from bot.venues.base import (
    VenueAmbiguous,
    VenueError,
    VenueNotSupported,
    VenueRejected,
    VenueTransient,
)
from bot.venues.ccxt_profiles import profile_for

# Where each exchange echoes our client order id in its raw payloads (ccxt leaves Deribit's
# `label` in `info` only; Binance's user-data stream calls it `c`).
_CLIENT_ID_KEYS = ("clientOrderId", "label", "c", "orderLinkId", "clOrdId", "cliOrdId")

# Order matters: OrderNotFound is an InvalidOrder, PermissionDenied an AuthenticationError,
# RateLimitExceeded a DDoSProtection and every one of these transient ones a NetworkError.
_REJECTED = (
    ccxt.InvalidOrder,
    ccxt.InsufficientFunds,
    ccxt.AuthenticationError,
    ccxt.BadSymbol,
    ccxt.BadRequest,
    ccxt.ArgumentsRequired,
    ccxt.AccountSuspended,
    ccxt.AccountNotEnabled,
    ccxt.OperationRejected,
)


def classify(exc: BaseException, *, creating: bool = False) -> VenueError:
    """The venue error for a ccxt exception. On create, any network failure is ambiguous: the
    request may have reached the matching engine before the connection died."""
    if isinstance(exc, VenueError):
        return exc
    text = f"{type(exc).__name__}: {exc}"
    if isinstance(exc, ccxt.NetworkError | TimeoutError | ConnectionError):
        return VenueAmbiguous(text) if creating else VenueTransient(text)
    if isinstance(exc, ccxt.NotSupported):
        return VenueNotSupported(text)
    if isinstance(exc, _REJECTED):
        return VenueRejected(text)
    if isinstance(exc, ccxt.OperationFailed):
        return VenueAmbiguous(text) if creating else VenueTransient(text)
    if isinstance(exc, ccxt.ExchangeError):
        # The venue answered with an error we do not know: it did not take the request.
        return VenueRejected(text)
    return VenueAmbiguous(text) if creating else VenueTransient(text)


def _num(value: Any) -> float | None:
    if value is None or value == "":
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _int(value: Any, default: int) -> int:
    number = _num(value)
    return int(number) if number is not None else default


def to_venue_amount(qty: float, per_contract: float) -> float:
    """Book contracts as the venue's amount. Decimal keeps 3 x 0.001 at 0.003, not 0.0030000004."""
    if per_contract == 1.0:
        return qty
    return float(Decimal(repr(qty)) * Decimal(repr(per_contract)))


def to_book_amount(amount: float, per_contract: float) -> float:
    """A venue amount as book contracts (0.003 BTC / 0.001 = 3 contracts, exactly)."""
    if per_contract == 1.0:
        return amount
    return float(Decimal(repr(amount)) / Decimal(repr(per_contract)))


def client_id_of(raw: Mapping[str, Any]) -> str | None:
    """Our client order id as the venue echoes it, from the unified field or the raw payload."""
    value = raw.get("clientOrderId")
    if value:
        return str(value)
    info = raw.get("info")
    if isinstance(info, Mapping):
        for key in _CLIENT_ID_KEYS:
            value = info.get(key)
            if isinstance(value, str) and value:
                return value
    return None


_STATUSES = {
    "open": OrderStatus.OPEN,
    "closed": OrderStatus.FILLED,
    "canceled": OrderStatus.CANCELLED,
    "cancelled": OrderStatus.CANCELLED,
    "rejected": OrderStatus.REJECTED,
    "expired": OrderStatus.EXPIRED,
}


def order_update(
    raw: Mapping[str, Any], now_ms: int, client_id: str | None = None, per_contract: float = 1.0
) -> OrderUpdate | None:
    """A ccxt order as an OrderUpdate; None when it carries no client id we can name it by."""
    cid = client_id or client_id_of(raw)
    side = raw.get("side")
    if not cid or side not in ("buy", "sell"):
        return None
    amount = to_book_amount(_num(raw.get("amount")) or 0.0, per_contract)
    filled = to_book_amount(_num(raw.get("filled")) or 0.0, per_contract)
    status = _STATUSES.get(str(raw.get("status")), OrderStatus.OPEN)
    if status is OrderStatus.OPEN and filled > 0:
        status = OrderStatus.PARTIALLY_FILLED
    return OrderUpdate(
        client_id=cid,
        symbol=str(raw.get("symbol")),
        side=Side(side),
        amount=amount,
        filled=filled,
        status=status,
        ts_ms=_int(raw.get("lastUpdateTimestamp") or raw.get("timestamp"), now_ms),
        price=_num(raw.get("price")),
        average=_num(raw.get("average")),
        venue_order_id=str(raw["id"]) if raw.get("id") is not None else None,
    )


def fill(
    raw: Mapping[str, Any], now_ms: int, client_id: str | None = None, per_contract: float = 1.0
) -> Fill | None:
    """A ccxt trade as a Fill; None without a client id (not one of our orders)."""
    cid = client_id or client_id_of(raw)
    side = raw.get("side")
    amount = _num(raw.get("amount"))
    price = _num(raw.get("price"))
    if not cid or side not in ("buy", "sell") or not amount or price is None:
        return None
    fee = raw.get("fee") or {}
    return Fill(
        client_id=cid,
        symbol=str(raw.get("symbol")),
        side=Side(side),
        amount=to_book_amount(abs(amount), per_contract),
        price=price,
        fee=_num(fee.get("cost")) or 0.0,
        fee_currency=str(fee.get("currency") or ""),
        ts_ms=_int(raw.get("timestamp"), now_ms),
        trade_id=str(raw.get("id")),
    )


def positions(
    raws: Iterable[Mapping[str, Any]],
    now_ms: int,
    source: str,
    per_contract: Callable[[str], float] = lambda symbol: 1.0,
) -> list[PositionReport]:
    """Signed book contracts per symbol. Hedge-mode legs (long and short of one symbol) are
    netted: the core holds one net position per instrument. ccxt's `contracts` is in the venue's
    amount unit (Deribit: its `size`, USD or coin), hence the per-symbol factor."""
    net: dict[str, float] = {}
    stamp: dict[str, int] = {}
    for raw in raws:
        symbol = raw.get("symbol")
        contracts = _num(raw.get("contracts"))
        if not symbol or contracts is None:
            continue
        side = raw.get("side")
        if side == "long":
            qty = abs(contracts)
        elif side == "short":
            qty = -abs(contracts)
        else:
            qty = contracts
        net[symbol] = net.get(symbol, 0.0) + to_book_amount(qty, per_contract(symbol))
        ts = _int(raw.get("timestamp"), now_ms)
        stamp[symbol] = max(stamp.get(symbol, 0), ts)
    return [PositionReport(symbol=s, qty=q, ts_ms=stamp[s], source=source) for s, q in net.items()]


def balances(raw: Mapping[str, Any]) -> dict[str, float]:
    """Total (free + used) per currency, zeros dropped."""
    totals = raw.get("total") or {}
    result: dict[str, float] = {}
    for currency, value in totals.items():
        number = _num(value)
        if number:
            result[str(currency)] = number
    return result


def _venue_greeks(
    info: Mapping[str, Any], instrument: Instrument | None, exchange_id: str, mark: float | None
) -> tuple[float | None, float | None]:
    """(iv as a fraction, coin delta per contract) from an exchange's raw ticker, read by the
    exchange's greeks convention (ccxt_profiles)."""
    convention = profile_for(exchange_id).greeks
    if convention is None:
        return None, None
    raw_iv = _num(info.get(convention.iv_key))
    iv = raw_iv * convention.iv_scale if raw_iv is not None else None
    node: Any = info
    for key in convention.delta_path:
        node = node.get(key) if isinstance(node, Mapping) else None
    delta = _num(node)
    inverse = instrument is not None and instrument.is_inverse
    if delta is not None and convention.premium_adjust_inverse and inverse:
        delta -= mark or 0.0
    if delta is not None and instrument is not None:
        delta *= instrument.contract_size
    return iv, delta


def ticker(
    raw: Mapping[str, Any],
    now_ms: int,
    instrument: Instrument | None = None,
    exchange_id: str = "",
) -> Ticker:
    info = raw.get("info") if isinstance(raw.get("info"), Mapping) else {}
    assert isinstance(info, Mapping)
    mark = _num(raw.get("markPrice"))
    if mark is None:
        mark = _num(info.get("mark_price") or info.get("markPrice") or info.get("p"))
    index = _num(raw.get("indexPrice"))
    if index is None:
        index = _num(info.get("index_price") or info.get("indexPrice") or info.get("i"))
    iv: float | None = None
    delta: float | None = None
    if instrument is not None and instrument.kind is Kind.OPTION:
        iv, delta = _venue_greeks(info, instrument, exchange_id, mark)
    return Ticker(
        symbol=str(raw.get("symbol")),
        ts_ms=_int(raw.get("timestamp"), now_ms),
        bid=_num(raw.get("bid")),
        ask=_num(raw.get("ask")),
        last=_num(raw.get("last")),
        mark=mark,
        index=index,
        iv=iv,
        venue_delta=delta,
    )


def _levels(side: Iterable[Any], depth: int | None, per_contract: float) -> tuple[BookLevel, ...]:
    out: list[BookLevel] = []
    for level in side:
        if depth is not None and len(out) >= depth:
            break
        price, amount = _num(level[0]), _num(level[1])
        if price is not None and amount:
            out.append(BookLevel(price=price, amount=to_book_amount(amount, per_contract)))
    return tuple(out)


def order_book(
    raw: Mapping[str, Any], now_ms: int, depth: int | None = None, per_contract: float = 1.0
) -> OrderBook:
    """A frozen copy of a (possibly live, cached) ccxt order book, amounts in book contracts."""
    return OrderBook(
        symbol=str(raw.get("symbol")),
        ts_ms=_int(raw.get("timestamp"), now_ms),
        bids=_levels(raw.get("bids") or (), depth, per_contract),
        asks=_levels(raw.get("asks") or (), depth, per_contract),
    )


DEFAULT_FUNDING_INTERVAL_H = 8.0


def funding_rate(raw: Mapping[str, Any], ts_ms: int) -> FundingRate:
    """ccxt's funding-rate structure: `fundingRate` per `interval` ("8h", "1h"; 8 hours when the
    exchange does not say). A missing rate is NaN, which FundingRate.problem() refuses."""
    rate = _num(raw.get("fundingRate"))
    interval = raw.get("interval")
    hours = DEFAULT_FUNDING_INTERVAL_H
    if isinstance(interval, str) and interval.endswith("h") and interval[:-1].isdigit():
        hours = float(interval[:-1])
    return FundingRate(rate if rate is not None else math.nan, hours, ts_ms)
