"""Coin equity kept for the "usd" view: venue balance reads plus our fills in between.

The numbers are bot/core/equity.py's; this keeps its state per (coin, account). A read waits
for the underlying's first market data (a read at start comes before any ticker): it is
applied at the next exposure with the fills booked since replayed over it.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt
import structlog

from bot.core import equity as eq
from bot.core.book import Columns, FloatArray, LineKey
from bot.core.greeks import MS_PER_YEAR, black_scholes, black_scholes_1d
from bot.core.instruments import Instrument
from bot.core.market import UnderlyingMarket
from bot.core.orders import Fill

log = structlog.get_logger("hedgebot.equity")


@dataclass(slots=True)
class _Read:
    total: float
    basis: eq.BalanceBasis
    positions: dict[str, float]  # the account's positions when read, by symbol
    fills: list[Fill] = field(default_factory=list)  # booked after the read


@dataclass(frozen=True, slots=True)
class _Masks:
    """Column indices of one underlying's columns for the accounts read (ascending, as the
    boolean masks they replace pick them)."""

    cols: Columns
    accounts: frozenset[str]
    own: npt.NDArray[np.bool_]  # lines held in an account read
    inverse_options: npt.NDArray[np.intp]  # coin-settled options
    inverse_one: npt.NDArray[np.intp]  # inverse perps and futures
    spot: npt.NDArray[np.intp]


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
        self._masks: dict[str, _Masks] = {}  # coin -> the columns _value picks

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
        self, coin: str, cols: Columns, held: FloatArray, iv: FloatArray, mkt: UnderlyingMarket
    ) -> float:
        """What the usd view adds to the coin's delta: the equity of the accounts read, less
        their spot lines (held coin counts once, in the balances). `held`, `iv`: contracts and
        implied vol per column of `cols` (NaN: the market's vol)."""
        for c, account in [k for k in self._pending if k[0] == coin]:
            self._apply(c, account, with_ivs(cols, iv, mkt))
        now = np.array([self._now_ms()], dtype=np.int64)
        return float(self._value(coin, cols, held, iv, mkt, np.array([mkt.index]), now)[0])

    def waiting(self, coin: str) -> bool:
        """Is a balance read of `coin` waiting to be applied?"""
        return any(k[0] == coin for k in self._pending)

    def delta_coin_span(
        self,
        coin: str,
        cols: Columns,
        held: FloatArray,
        iv: FloatArray,
        mkt: UnderlyingMarket,
        s: FloatArray,
        now_ms: npt.NDArray[np.int64],
    ) -> FloatArray | None:
        """`delta_coin` at each (s[i], now_ms[i]) with nothing else moving (a backtest's quiet
        span); None while a read waits to be applied."""
        if self.waiting(coin):
            return None
        return self._value(coin, cols, held, iv, mkt, s, now_ms)

    def _value(
        self,
        coin: str,
        cols: Columns,
        held: FloatArray,
        iv: FloatArray,
        mkt: UnderlyingMarket,
        s: FloatArray,
        now_ms: npt.NDArray[np.int64],
    ) -> FloatArray:
        """E - spot lines at each (s[i], now_ms[i]), on the columns' arrays: the accounts'
        bases, plus their coin-settled options at the Black-Scholes price in coin (the price the
        premium-adjusted delta subtracts, so E and the deltas agree), less their inverse perps
        and futures (-qty x size / P), less their spot."""
        accounts = self.accounts.get(coin, {})
        if not accounts:
            return np.zeros(len(s))
        m = self._masks_of(coin, cols, accounts)
        q = np.where(m.own, held, 0.0)
        value = np.full(len(s), sum(a.basis for a in accounts.values()))
        # Kinds of line the book lacks are skipped: each would subtract 0.0, which changes no
        # value.
        if m.inverse_options.size:
            opt = m.inverse_options[q[m.inverse_options] != 0.0]
            if opt.size:
                value = value + _coin_premiums(cols, opt, q, iv, mkt, s, now_ms)
        if m.inverse_one.size:
            value = value - float(np.dot(q[m.inverse_one], cols.contract_size[m.inverse_one])) / s
        if m.spot.size:
            value = value - float(np.dot(q[m.spot], cols.contract_size[m.spot]))
        return value

    def _masks_of(self, coin: str, cols: Columns, accounts: Mapping[str, object]) -> _Masks:
        """The columns `_value` picks, kept while the columns and the accounts read stay."""
        m = self._masks.get(coin)
        if m is None or m.cols is not cols or m.accounts != accounts.keys():
            own = np.fromiter((k[0] in accounts for k in cols.keys), bool, len(cols.keys))
            m = _Masks(
                cols,
                frozenset(accounts),
                own,
                np.flatnonzero(cols.is_option & cols.is_inverse),
                np.flatnonzero(cols.is_inverse & ~cols.is_option & ~cols.is_spot),
                np.flatnonzero(cols.is_spot),
            )
            self._masks[coin] = m
        return m

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


def with_ivs(cols: Columns, iv: FloatArray, mkt: UnderlyingMarket) -> UnderlyingMarket:
    """The market with each option column's IV as a mapping (code that works on mappings)."""
    ivs = {k: v for k, v in zip(cols.keys, iv.tolist(), strict=True) if v == v}
    return replace(mkt, option_iv=ivs)


def _coin_premiums(
    cols: Columns,
    opt: npt.NDArray[np.intp],
    q: FloatArray,
    iv: FloatArray,
    mkt: UnderlyingMarket,
    s: FloatArray,
    now_ms: npt.NDArray[np.int64],
) -> FloatArray:
    """The coin-settled options `opt` (held `q`) at their Black-Scholes price in coin, at each
    (s[i], now_ms[i]). One price (a decision) takes the 1-D kernel: the same floats without
    broadcasting a one-row grid."""
    vol = np.where(np.isnan(iv[opt]), mkt.vol, iv[opt])
    size = q[opt] * cols.contract_size[opt]
    k, call = cols.strike[opt], cols.is_call[opt]
    if len(s) == 1 and s[0] > 0.0:
        s0 = float(s[0])
        t1 = np.maximum(cols.expiry_ms[opt] - now_ms[0], 0) / MS_PER_YEAR
        price1 = black_scholes_1d(s0, k, t1, mkt.rate, vol, call).price
        return np.array([(price1 / s0 * size).sum()])
    t = np.maximum(cols.expiry_ms[opt][None, :] - now_ms[:, None], 0) / MS_PER_YEAR
    price = black_scholes(s[:, None], k[None, :], t, mkt.rate, vol[None, :], call[None, :]).price
    return np.asarray((price / s[:, None] * size).sum(axis=1), dtype=np.float64)
