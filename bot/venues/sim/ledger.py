"""Positions and balances of one simulated account (pure, in-memory).

No margin model: any order is accepted whatever the balances, and balances may go negative.
Cash moves like this (s = +1 buy, -1 sell; size = amount x contract size):
- spot: quote -= s*size*price, coin += s*size;
- options: the premium moves at trade time (linear: quote; inverse: coin, as the price is coin);
  at expiry the intrinsic value is paid to the holder;
- perps and futures: nothing moves at trade time; P&L is realized into the settlement currency
  when a position is reduced (linear: size x price difference; inverse: coin P&L
  size x (1/entry - 1/exit)) and at expiry (dated futures, at the index);
- perps pay or receive funding every 8 hours (bot/venues/sim/settlement.py): rate x notional at
  the mark, longs paying a positive rate.
Fees are charged separately, in the settlement currency.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from bot.core.instruments import Instrument, Kind
from bot.core.market import BookLevel
from bot.core.orders import Fill
from bot.venues.sim import book as bk
from bot.venues.sim.listing import settle_currency
from bot.venues.sim.pricing import intrinsic_usd
from bot.venues.sim.records import SimOrder

EPS = 1e-12


@dataclass(slots=True)
class Position:
    qty: float = 0.0  # contracts, signed
    # Entry value of the open quantity, signed like qty: quote units (qty x size x price) for
    # linear contracts, coin (qty x size / price) for inverse ones. Only used for perps/futures.
    cost: float = 0.0


@dataclass(slots=True)
class Ledger:
    positions: dict[str, Position] = field(default_factory=dict)
    balances: dict[str, float] = field(default_factory=dict)

    def qty(self, symbol: str) -> float:
        pos = self.positions.get(symbol)
        return pos.qty if pos is not None else 0.0

    def _add(self, currency: str, amount: float) -> None:
        self.balances[currency] = self.balances.get(currency, 0.0) + amount

    def trade(self, inst: Instrument, signed: float, price: float, fee: float) -> None:
        """Book a fill of `signed` contracts at `price` with `fee` (settlement currency)."""
        pos = self.positions.setdefault(inst.symbol, Position())
        size = signed * inst.contract_size
        settle = settle_currency(inst)
        if inst.kind is Kind.SPOT:
            self._add(inst.quote, -size * price)
            self._add(inst.underlying, size)
            pos.qty = round(pos.qty + signed, 12)
        elif inst.kind is Kind.OPTION:
            self._add(settle, -size * price)
            pos.qty = round(pos.qty + signed, 12)
        else:
            self._add(settle, _delta_one(inst, pos, signed, price))
        self._add(settle, -fee)

    def fill_leg(
        self,
        inst: Instrument,
        order: SimOrder,
        leg: BookLevel,
        index: float,
        maker: bool,
        trade_id: str,
        ts_ms: int,
    ) -> Fill:
        """One matched leg of an order: charge the fee, move the account and the order, and
        return the fill. The simulated exchange and paper trading both book fills here."""
        r = order.request
        rate = inst.maker_fee if maker else inst.taker_fee
        fee = bk.fee(inst, leg.amount, leg.price, index, rate)
        self.trade(inst, leg.amount * r.side.sign, leg.price, fee)
        order.filled = round(order.filled + leg.amount, 12)
        order.notional += leg.amount * leg.price
        return Fill(
            client_id=r.client_id,
            symbol=r.symbol,
            side=r.side,
            amount=leg.amount,
            price=leg.price,
            fee=fee,
            fee_currency=settle_currency(inst),
            ts_ms=ts_ms,
            trade_id=trade_id,
        )

    def settle_expired(self, inst: Instrument, index: float) -> float:
        """Close the position in an expired instrument at `index`; returns the cash paid in the
        settlement currency (negative when paid out)."""
        pos = self.positions.get(inst.symbol)
        if pos is None or abs(pos.qty) < EPS:
            return 0.0
        settle = settle_currency(inst)
        if inst.kind is Kind.OPTION:
            payoff = intrinsic_usd(inst, index) * pos.qty * inst.contract_size
            cash = payoff / index if inst.is_inverse else payoff
            pos.qty = 0.0
        else:
            cash = _delta_one(inst, pos, -pos.qty, index)
        pos.cost = 0.0
        self._add(settle, cash)
        return cash

    def pay_funding(self, inst: Instrument, rate: float, mark: float) -> float:
        """One funding payment on a perpetual: the position's notional at `mark` times `rate`,
        paid by longs to shorts when the rate is positive (the other way when negative), in
        the settlement currency (coin for inverse contracts). Returns what the account paid
        (negative when it received)."""
        pos = self.positions.get(inst.symbol)
        if pos is None or abs(pos.qty) < EPS or rate == 0.0 or not mark > 0.0:
            return 0.0
        paid = pos.qty * _unit_value(inst, mark) * rate
        self._add(settle_currency(inst), -paid)
        return paid


def _unit_value(inst: Instrument, price: float) -> float:
    return inst.contract_size / price if inst.is_inverse else inst.contract_size * price


def _delta_one(inst: Instrument, pos: Position, signed: float, price: float) -> float:
    """Apply a perp/future trade to `pos`; returns the P&L it realizes."""
    realized = 0.0
    if pos.qty * signed < 0:  # reduces (and may flip) the position
        closing = -pos.qty if abs(signed) >= abs(pos.qty) else signed
        removed = pos.cost * (-closing / pos.qty)
        exit_value = -closing * _unit_value(inst, price)
        # Linear: exit value - entry value. Inverse: the coin paid at entry less the coin at exit.
        realized = removed - exit_value if inst.is_inverse else exit_value - removed
        pos.cost -= removed
        pos.qty = round(pos.qty + closing, 12)
        signed = round(signed - closing, 12)
        if abs(pos.qty) < EPS:
            pos.qty, pos.cost = 0.0, 0.0
    if abs(signed) > EPS:
        pos.qty = round(pos.qty + signed, 12)
        pos.cost += signed * _unit_value(inst, price)
    return realized
