from __future__ import annotations

import pytest

from bot.core.orders import Fill, OrderIntent, OrderStatus, OrderUpdate, Side
from bot.execution.ledger import Ledger


def intent(cid: str = "c1", amount: float = 2.0, side: Side = Side.SELL) -> OrderIntent:
    return OrderIntent(cid, "BTC", "BTC/USDT:USDT", side, amount, "outside_band")


def update(status: OrderStatus, filled: float, cid: str = "c1") -> OrderUpdate:
    return OrderUpdate(cid, "BTC/USDT:USDT", Side.SELL, 2.0, filled, status, 1)


def fill(tid: str, amount: float, cid: str = "c1") -> Fill:
    return Fill(cid, "BTC/USDT:USDT", Side.SELL, amount, 50_000, 0.5, "USDT", 1, tid)


KEY = ("acc", "BTC/USDT:USDT")


def test_order_counts_in_flight_from_creation_to_settlement() -> None:
    led = Ledger()
    led.open("acc", intent(), None, 0)
    assert led.in_flight() == {KEY: -2.0}
    led.book_fill("acc", fill("t1", 0.5))
    assert led.in_flight() == {KEY: pytest.approx(-1.5)}
    assert led.positions[KEY] == pytest.approx(-0.5)


def test_filled_update_before_fill_keeps_the_exposure_in_flight() -> None:
    # The venue says "filled" before the fill stream delivers: the fill must still count.
    led = Ledger()
    led.open("acc", intent(), None, 0)
    led.apply_update(update(OrderStatus.FILLED, 2.0))
    assert led.in_flight() == {KEY: -2.0}
    assert led.has_unsettled("BTC")
    led.book_fill("acc", fill("t1", 2.0))
    assert led.in_flight() == {}
    assert not led.has_unsettled("BTC")
    assert led.positions[KEY] == -2.0


def test_cancelled_partial_only_counts_what_filled() -> None:
    led = Ledger()
    led.open("acc", intent(), None, 0)
    led.apply_update(update(OrderStatus.CANCELLED, 0.5))
    assert led.in_flight() == {KEY: -0.5}
    led.book_fill("acc", fill("t1", 0.5))
    assert led.in_flight() == {} and led.positions[KEY] == -0.5


def test_fills_are_booked_once() -> None:
    led = Ledger()
    led.open("acc", intent(), None, 0)
    assert led.book_fill("acc", fill("t1", 1.0))
    assert not led.book_fill("acc", fill("t1", 1.0))
    assert led.positions[KEY] == -1.0 and led.fills_count == 1


def test_a_trade_id_reused_for_another_order_books_again() -> None:
    """Another order's fill under a trade id seen before is a new trade (core.orders.same_trade);
    one that names no order is not."""
    led = Ledger()
    led.open("acc", intent(), None, 0)
    led.open("acc", intent("c2"), None, 0)
    assert led.book_fill("acc", fill("t1", 1.0))
    assert led.book_fill("acc", fill("t1", 0.5, cid="c2"))
    assert not led.book_fill("acc", fill("t1", 0.5, cid="c2"))
    assert not led.book_fill("acc", fill("t1", 0.5, cid=""))
    assert led.positions[KEY] == -1.5 and led.fills_count == 2


def test_late_non_terminal_update_does_not_reopen_an_order() -> None:
    led = Ledger()
    led.open("acc", intent(), None, 0)
    led.apply_update(update(OrderStatus.REJECTED, 0.0))
    led.apply_update(update(OrderStatus.OPEN, 0.0))
    assert led.orders["c1"].status is OrderStatus.REJECTED
    assert led.in_flight() == {}


def test_a_client_id_is_used_once() -> None:
    led = Ledger()
    led.open("acc", intent(), None, 0)
    with pytest.raises(ValueError):
        led.open("acc", intent(), None, 0)


def test_unknown_updates_are_reported_as_none() -> None:
    assert Ledger().apply_update(update(OrderStatus.OPEN, 0.0, cid="other")) is None


def test_settled_orders_beyond_the_history_are_forgotten_unsettled_ones_never() -> None:
    """A long run keeps the newest `history` settled orders (the journal holds the rest):
    memory and the walks over orders stay bounded; what is in flight always counts."""
    led = Ledger(history=3)
    led.open("acc", intent("open"), None, 0)  # never settles
    led.open("acc", intent("filled-not-booked"), None, 0)
    led.apply_update(update(OrderStatus.FILLED, 2.0, "filled-not-booked"))
    for n in range(20):
        cid = f"c{n}"
        led.open("acc", intent(cid), None, n)
        led.apply_update(update(OrderStatus.FILLED, 2.0, cid))
        led.book_fill("acc", fill(f"t{n}", 2.0, cid))
    assert len(led.orders) <= 2 + 2 * 3
    assert "open" in led.orders and "filled-not-booked" in led.orders
    assert "c19" in led.orders and "c0" not in led.orders
    assert led.in_flight() == {KEY: -4.0}  # the two unsettled orders, nothing forgotten
    assert led.positions[KEY] == pytest.approx(-40.0)
    filled = sum(1 for o in led.orders.values() if o.booked > 0)
    assert led.forgotten_filled + filled == 20


def test_in_flight_walk_agrees_with_every_order_through_any_sequence() -> None:
    """The ledger walks only the orders that may still be working; whatever happens to an order
    (a late terminal update that reopens it, a fill, removal from the ledger), what counts in
    flight is what a walk over every order gives."""

    def full_walk(led: Ledger) -> dict[tuple[str, str], float]:
        out: dict[tuple[str, str], float] = {}
        for o in led.orders.values():
            if o.unbooked != 0.0:
                out[o.key] = out.get(o.key, 0.0) + o.unbooked
        return out

    led = Ledger()
    led.open("acc", intent("a"), None, 0)
    led.open("acc", intent("b"), None, 0)
    led.apply_update(update(OrderStatus.CANCELLED, 0.0, "a"))  # settled: nothing filled
    assert led.in_flight() == full_walk(led) == {KEY: -2.0}
    # A late terminal update says "a" filled 1 before it was cancelled: it counts again.
    led.apply_update(update(OrderStatus.CANCELLED, 1.0, "a"))
    assert led.in_flight() == full_walk(led) == {KEY: -3.0}
    assert [o.intent.client_id for o in led.unsettled()] == ["b", "a"]
    led.book_fill("acc", fill("t-a", 1.0, "a"))
    assert led.in_flight() == full_walk(led) == {KEY: -2.0}
    led.orders.pop("b")  # a worked parent is dropped from the ledger by its algorithm
    assert led.in_flight() == full_walk(led) == {}
    assert not led.has_unsettled("BTC")
