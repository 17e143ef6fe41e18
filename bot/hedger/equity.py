"""Coin equity kept for the "usd" view: venue balance reads plus our fills in between.

The numbers are bot/core/equity.py's; this keeps its state per (coin, account). A read waits
for the underlying's first market data (a read at start comes before any ticker): it is
applied at the next exposure with the fills booked since replayed over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import structlog

from bot.core import equity as eq
from bot.core.book import Columns, FloatArray, LineKey
from bot.core.greeks import MS_PER_YEAR, black_scholes
from bot.core.instruments import Instrument, Kind, OptionType
from bot.core.market import UnderlyingMarket
from bot.core.orders import Fill

log = structlog.get_logger("hedgebot.equity")


@dataclass(slots=True)
class _Read:
    total: float
    basis: eq.BalanceBasis
    positions: dict[str, float]  # the account's positions when read, by symbol
    fills: list[Fill] = field(default_factory=list)  # booked after the read


class EquityTracker:
    def __init__(
        self,
        lines: Mapping[LineKey, Instrument],
        positions: Mapping[LineKey, float],
        market: Callable[[str], UnderlyingMarket | None],
        now_ms: Callable[[], int],
    ) -> None:
        self._lines = lines
        self._positions = positions
        self._market = market
        self._now_ms = now_ms
        self.accounts: dict[str, dict[str, eq.CoinAccount]] = {}  # coin -> account -> holding
        self._pending: dict[tuple[str, str], _Read] = {}  # (coin, account) -> read to apply

    def on_read(
        self, account: str, balances: Mapping[str, float], basis: eq.BalanceBasis, coins: set[str]
    ) -> None:
        """A balance read of `account`; `coins`: the hedged underlyings."""
        upper = {c.upper(): v for c, v in balances.items()}
        held = {s: q for (a, s), q in self._positions.items() if a == account}
        for coin in coins:
            self._pending[(coin, account)] = _Read(upper.get(coin.upper(), 0.0), basis, dict(held))
            mkt = self._market(coin)
            if mkt is not None:
                self._apply(coin, account, mkt)

    def counts(self, coin: str) -> bool:
        """Has any account's balance of `coin` been read (applied or waiting for a price)?"""
        return bool(self.accounts.get(coin)) or any(k[0] == coin for k in self._pending)

    def on_fill(self, account: str, fill: Fill, ins: Instrument | None) -> None:
        if ins is None:
            return
        coin = ins.underlying
        pending = self._pending.get((coin, account))
        if pending is not None:
            pending.fills.append(fill)
            return
        holding = self.accounts.get(coin, {}).get(account)
        if holding is not None:  # before the first read: that read will hold the fill
            holding.on_fill(ins, fill.signed_amount, fill.price, fill.fee, fill.fee_currency)

    def delta_coin(
        self, coin: str, cols: Columns, positions: Mapping[LineKey, float], mkt: UnderlyingMarket
    ) -> float:
        """What the usd view adds to the coin's delta: the equity of the accounts read, less
        their spot lines (held coin counts once, in the balances)."""
        for c, account in [k for k in self._pending if k[0] == coin]:
            self._apply(c, account, mkt)
        accounts = self.accounts.get(coin, {})
        if not accounts:
            return 0.0
        lines = {k: self._lines[k] for k in cols.keys}
        marks = eq.option_marks_coin(cols, mkt, self._now_ms())
        equity = eq.coin_equity(accounts, lines, positions, mkt.index, marks)
        return equity - eq.spot_coin(lines, positions, set(accounts))

    def waiting(self, coin: str) -> bool:
        """Is a balance read of `coin` waiting to be applied?"""
        return any(k[0] == coin for k in self._pending)

    def delta_coin_span(
        self,
        coin: str,
        cols: Columns,
        positions: Mapping[LineKey, float],
        mkt: UnderlyingMarket,
        s: FloatArray,
        now_ms: npt.NDArray[np.int64],
    ) -> FloatArray | None:
        """`delta_coin` at each (s[i], now_ms[i]) with nothing else moving (a backtest's quiet
        span); None while a read waits to be applied."""
        if self.waiting(coin):
            return None
        accounts = self.accounts.get(coin, {})
        if not accounts:
            return np.zeros(len(s))
        lines = {k: self._lines[k] for k in cols.keys}
        value = np.full(len(s), sum(a.basis for a in accounts.values()))
        for key, ins in lines.items():
            qty = positions.get(key, 0.0)
            if key[0] not in accounts or qty == 0.0 or not eq.is_coin_settled(ins):
                continue
            if ins.kind is Kind.OPTION:
                iv = mkt.option_iv.get(key, mkt.vol)
                t = np.maximum(int(ins.expiry_ms or 0) - now_ms, 0) / MS_PER_YEAR
                call = ins.option_type is OptionType.CALL
                price = black_scholes(s, float(ins.strike or 0.0), t, mkt.rate, iv, call).price
                value = value + qty * (price / s * ins.contract_size)
            else:
                value = value - qty * ins.contract_size / s
        return value - eq.spot_coin(lines, positions, set(accounts))

    def _apply(self, coin: str, account: str, mkt: UnderlyingMarket) -> None:
        read = self._pending.pop((coin, account))
        lines = {s: i for (a, s), i in self._lines.items() if a == account and i.underlying == coin}
        cols = Columns.of(coin, {(account, s): i for s, i in lines.items()})
        marks = {k[1]: m for k, m in eq.option_marks_coin(cols, mkt, self._now_ms()).items()}
        holding = self.accounts.setdefault(coin, {}).setdefault(account, eq.CoinAccount())
        holding.on_read(read.total, read.basis, lines, read.positions, mkt.index, marks)
        for fill in read.fills:
            ins = lines.get(fill.symbol)
            if ins is not None:
                holding.on_fill(ins, fill.signed_amount, fill.price, fill.fee, fill.fee_currency)
        log.debug(
            "equity.read",
            account=account,
            coin=coin,
            total=read.total,
            reads_as=read.basis,
            basis_coin=holding.basis,
            fills_after=len(read.fills),
        )
