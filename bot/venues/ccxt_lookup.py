"""Finding orders at the venue the way each exchange allows (ccxt_profiles says which): the
account's open orders (Deribit lists them per settlement currency only) and one order by our
client id (Deribit by label, some by a client id parameter, the rest by scanning the open and
closed orders of the symbol). Raw ccxt dicts out; the venue converts them."""

from __future__ import annotations

from collections.abc import Collection
from typing import Any

import ccxt
import structlog

from bot.venues import ccxt_convert as convert
from bot.venues.ccxt_profiles import ExchangeProfile

log = structlog.get_logger(__name__)


async def open_orders_raw(
    ex: Any, profile: ExchangeProfile, listed: Collection[str], symbol: str | None
) -> list[dict[str, Any]]:
    """Open orders of `symbol`, or of every market when None; `listed`: the symbols mapped to
    instruments, whose settlement currencies are asked where the venue needs a currency."""
    if symbol is None and profile.open_orders_per_currency:
        # Deribit lists open orders per currency; ccxt needs a symbol or a currency.
        out: list[dict[str, Any]] = []
        for currency in _settle_currencies(ex, listed):
            out.extend(await ex.fetch_open_orders(None, None, None, {"currency": currency}))
        return out
    if symbol is None and not profile.warn_open_orders_without_symbol:
        ex.options.setdefault("warnOnFetchOpenOrdersWithoutSymbol", False)
    return list(await ex.fetch_open_orders(symbol))


def _settle_currencies(ex: Any, listed: Collection[str]) -> list[str]:
    currencies = {
        str(m.get("settleId") or m.get("baseId"))
        for m in (ex.markets or {}).values()
        if m.get("symbol") in listed
    }
    return sorted(currencies)


async def find_order_raw(
    ex: Any, profile: ExchangeProfile, account: str, client_id: str, symbol: str
) -> dict[str, Any] | None:
    """The venue's record of the order with this client id, or None if it has none."""
    if profile.order_lookup == "label_by_currency":
        market = ex.market(symbol)
        response = await ex.privateGetGetOrderStateByLabel(
            {"currency": market["settleId"], "label": client_id}
        )
        orders = [
            o
            for o in ex.parse_orders(response.get("result") or [], market)
            if o.get("symbol") == symbol
        ]
        # Deribit does not enforce unique labels: the newest wins, and more than one is a
        # duplicate worth shouting about.
        if len(orders) > 1:
            log.error("venue.duplicate_label", account=account, client_id=client_id, n=len(orders))
        return max(orders, key=lambda o: o.get("timestamp") or 0) if orders else None
    if profile.order_lookup == "client_id_param":
        try:
            raw: dict[str, Any] = await ex.fetch_order(None, symbol, {"clientOrderId": client_id})
            return raw
        except ccxt.OrderNotFound:
            return None
    for fetch in (ex.fetch_open_orders, ex.fetch_closed_orders):
        for raw in await fetch(symbol):
            if convert.client_id_of(raw) == client_id:
                found: dict[str, Any] = raw
                return found
    return None
