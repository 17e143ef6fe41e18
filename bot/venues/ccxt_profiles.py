"""What differs between exchanges, as data: one frozen profile per ccxt exchange id, merged over
the defaults (so a new exchange starts from the common case and only states its exceptions).

Amount units say what the number ccxt sends and returns as an order, fill or position amount
counts, per market class:
- "contracts": contracts of the market's contract value (OKX `sz`, Bybit inverse qty in USD
  contracts). One book contract is one venue contract; amounts pass through unchanged.
- "base": the base coin (Deribit linear futures and options, Binance USD-M, Bybit linear). One
  book contract is the contract value in coin, and the venue amount is contracts x that value.
- "quote": USD (Deribit inverse futures and perps). One book contract is 1 USD and the venue's
  contract size becomes the lot, so amounts pass through unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any, Literal

AmountUnit = Literal["contracts", "base", "quote"]
OrderLookup = Literal["label_by_currency", "client_id_param", "scan_open_and_closed"]


@dataclass(frozen=True, slots=True)
class GreeksConvention:
    """Where an exchange's raw option ticker keeps implied vol and delta, and in what units."""

    iv_key: str
    iv_scale: float  # multiplies the raw value into a fraction (Deribit reports percent)
    delta_path: tuple[str, ...]
    # Black-Scholes delta per coin: on coin-settled options the core wants the premium-adjusted
    # delta, which subtracts the mark (quoted in coin). False: the venue already adjusts.
    premium_adjust_inverse: bool = False


@dataclass(frozen=True, slots=True)
class ExchangeProfile:
    linear_amount: AmountUnit = "contracts"
    inverse_amount: AmountUnit = "contracts"
    option_amount: AmountUnit = "contracts"
    # `info` fields whose product is the contract value, when ccxt's contractSize misses a factor
    # (OKX options: ctVal 1 x ctMult 0.01 BTC, ccxt says 1). Empty: ccxt's contractSize.
    contract_value_info: tuple[str, ...] = ()
    client_id_param: str = "clientOrderId"
    # Sandbox refuses private calls: the exchange's demo system is its test system instead.
    demo_instead_of_sandbox: bool = False
    # The ticker stream is a 24h statistic; the top of book comes from watch_bids_asks.
    top_of_book_stream: bool = False
    # Open orders without a symbol are listed per settlement currency.
    open_orders_per_currency: bool = False
    # A no-symbol fetch_open_orders warns unless told it is meant.
    warn_open_orders_without_symbol: bool = True
    order_lookup: OrderLookup = "scan_open_and_closed"
    greeks: GreeksConvention | None = None
    # What ccxt's balance total of a coin is (bot/core/equity.py): "wallet" settled cash, or
    # "equity" already marked to market (unrealized coin P&L and option value included).
    balance_total: Literal["wallet", "equity"] = "wallet"


DEFAULT_PROFILE = ExchangeProfile()

_BINANCE: dict[str, Any] = {
    "linear_amount": "base",
    "top_of_book_stream": True,
    "warn_open_orders_without_symbol": False,
    "order_lookup": "client_id_param",
}

_OVERRIDES: dict[str, dict[str, Any]] = {
    "binanceusdm": {**_BINANCE, "demo_instead_of_sandbox": True},
    "binance": _BINANCE,
    "bybit": {
        "linear_amount": "base",
        "option_amount": "base",
        "greeks": GreeksConvention("markIv", 1.0, ("delta",)),
    },
    "okx": {
        "contract_value_info": ("ctVal", "ctMult"),
        "order_lookup": "client_id_param",
        # markVol a fraction; `delta` the premium-adjusted coin delta (deltaBS is the BS one).
        "greeks": GreeksConvention("markVol", 1.0, ("delta",)),
        "balance_total": "equity",  # ccxt reads `eq`
    },
    "deribit": {
        "linear_amount": "base",
        "inverse_amount": "quote",
        "option_amount": "base",
        "client_id_param": "label",
        "open_orders_per_currency": True,
        "order_lookup": "label_by_currency",
        "greeks": GreeksConvention("mark_iv", 0.01, ("greeks", "delta"), True),
        "balance_total": "equity",  # ccxt reads the account summary's `equity`
    },
}


def amount_unit(profile: ExchangeProfile, kind: str, inverse: bool) -> AmountUnit | None:
    """How ccxt counts amounts of a market of this kind ("spot", "perp", "future", "option");
    None for spot, which is coin everywhere."""
    if kind == "spot":
        return None
    if kind == "option":
        return profile.option_amount
    return profile.inverse_amount if inverse else profile.linear_amount


def profile_for(exchange_id: str) -> ExchangeProfile:
    """The profile of a ccxt exchange id; unknown ids get the defaults."""
    return replace(DEFAULT_PROFILE, **_OVERRIDES.get(exchange_id, {}))
