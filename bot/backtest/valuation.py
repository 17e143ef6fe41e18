"""What a simulated account is worth, marked to market: the yardstick of hedged P&L.

Pure. Value in USD = every balance at its USD price (stablecoins 1, a coin at its underlying's
index) + options at their mark + perps and futures at their unrealized P&L. Option premiums,
spot trades, realized P&L and fees already moved the balances (bot/venues/sim/ledger.py).
"""

from __future__ import annotations

from collections.abc import Mapping

from bot.core.instruments import Instrument, Kind
from bot.core.pnl import usd_price
from bot.venues.sim.ledger import Ledger


def value_usd(
    ledger: Ledger,
    instruments: Mapping[str, Instrument],
    index: Mapping[str, float],
    marks: Mapping[str, float],
) -> float:
    """`index`: underlying -> USD index; `marks`: option symbol -> mark in its quote units
    (coin for coin-settled options, USD for linear ones)."""
    total = sum(amount * usd_price(c, index) for c, amount in ledger.balances.items())
    for symbol, pos in ledger.positions.items():
        if pos.qty == 0.0:
            continue
        ins = instruments[symbol]
        s = index[ins.underlying]
        if ins.kind is Kind.OPTION:
            mark = marks.get(symbol, 0.0)
            per = mark * s if ins.is_inverse else mark
            total += pos.qty * ins.contract_size * per
        elif ins.kind is not Kind.SPOT:
            if ins.is_inverse:  # coin P&L: the coin paid at entry less the coin at the price now
                total += (pos.cost - pos.qty * ins.contract_size / s) * s
            else:
                total += pos.qty * ins.contract_size * s - pos.cost
    return total
