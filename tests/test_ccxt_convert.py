"""ccxt structures and errors mapped to the core's values (pure, no exchange)."""

from __future__ import annotations

import ccxt
import pytest

from bot.core.instruments import Instrument, Kind, OptionType, Settlement
from bot.core.orders import OrderStatus
from bot.venues import ccxt_convert as convert
from bot.venues.base import VenueAmbiguous, VenueNotSupported, VenueRejected, VenueTransient
from bot.venues.ccxt_setup import apply_url_overrides


@pytest.mark.parametrize(
    ("exc", "creating", "expected"),
    [
        (ccxt.InvalidOrder("x"), True, VenueRejected),
        (ccxt.OrderNotFound("x"), True, VenueRejected),
        (ccxt.InsufficientFunds("x"), True, VenueRejected),
        (ccxt.AuthenticationError("x"), False, VenueRejected),
        (ccxt.PermissionDenied("x"), False, VenueRejected),
        (ccxt.BadSymbol("x"), False, VenueRejected),
        (ccxt.NotSupported("x"), False, VenueNotSupported),
        (ccxt.NetworkError("x"), False, VenueTransient),
        (ccxt.RateLimitExceeded("x"), False, VenueTransient),
        (ccxt.DDoSProtection("x"), False, VenueTransient),
        (ccxt.ExchangeNotAvailable("x"), False, VenueTransient),
        (ccxt.RequestTimeout("x"), False, VenueTransient),
        (ccxt.RequestTimeout("x"), True, VenueAmbiguous),
        (ccxt.NetworkError("x"), True, VenueAmbiguous),
    ],
)
def test_classify(exc: Exception, creating: bool, expected: type) -> None:
    assert type(convert.classify(exc, creating=creating)) is expected


def test_order_status_and_client_id_from_raw_payload() -> None:
    raw = {
        "id": "9",
        "symbol": "BTC/USD:BTC",
        "side": "buy",
        "amount": 20,
        "filled": 10,
        "status": "open",
        "timestamp": 5,
        "info": {"label": "hb-7"},
    }
    update = convert.order_update(raw, now_ms=1)
    assert update is not None and update.client_id == "hb-7"
    assert update.status is OrderStatus.PARTIALLY_FILLED and update.ts_ms == 5
    assert convert.order_update({**raw, "status": "canceled"}, 1).status is OrderStatus.CANCELLED  # type: ignore[union-attr]
    assert convert.order_update({**raw, "info": {}}, 1) is None  # not one of ours


def test_positions_are_signed_and_netted() -> None:
    raws = [
        {"symbol": "A", "contracts": 3, "side": "long"},
        {"symbol": "A", "contracts": 1, "side": "short"},
        {"symbol": "B", "contracts": -20, "side": None},  # Deribit: signed size
    ]
    got = {p.symbol: p.qty for p in convert.positions(raws, 1, "x")}
    assert got == {"A": 2.0, "B": -20.0}


def test_venue_greeks_units() -> None:
    inverse_call = Instrument(
        "C",
        "BTC",
        Kind.OPTION,
        Settlement.INVERSE,
        1.0,
        expiry_ms=1,
        strike=1.0,
        option_type=OptionType.CALL,
    )
    deribit = {
        "symbol": "C",
        "info": {"mark_iv": 61.27, "mark_price": 0.05, "greeks": {"delta": 0.55}},
    }
    t = convert.ticker(deribit, 1, inverse_call, "deribit")
    assert t.iv == pytest.approx(0.6127) and t.venue_delta == pytest.approx(0.50)
    linear_call = Instrument(
        "L",
        "BTC",
        Kind.OPTION,
        Settlement.LINEAR,
        0.01,
        expiry_ms=1,
        strike=1.0,
        option_type=OptionType.CALL,
    )
    okx = {"symbol": "L", "info": {"markVol": "0.6", "delta": "0.4", "deltaBS": "0.45"}}
    t = convert.ticker(okx, 1, linear_call, "okx")
    assert t.iv == 0.6 and t.venue_delta == pytest.approx(0.004)  # PA delta x contract size


def test_book_is_copied_and_depth_limited() -> None:
    live = {"symbol": "S", "timestamp": 3, "bids": [[10, 1], [9, 2]], "asks": [[11, 1], [12, 0]]}
    book = convert.order_book(live, 1, depth=1)
    live["bids"][0][1] = 99
    assert book.bids[0].amount == 1 and len(book.bids) == 1 and book.ts_ms == 3


def test_url_overrides_replace_nested_entries_and_refuse_unknown_keys() -> None:
    api = {"rest": "https://x", "ws": {"linear": "wss://y/ws"}}
    apply_url_overrides(api, {"rest": "http://127.0.0.1:1", "ws.linear": "ws://127.0.0.1:1/ws"})
    assert api == {"rest": "http://127.0.0.1:1", "ws": {"linear": "ws://127.0.0.1:1/ws"}}
    with pytest.raises(ValueError):
        apply_url_overrides(api, {"rets": "http://127.0.0.1:1"})
