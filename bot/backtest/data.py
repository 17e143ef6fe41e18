"""Recorded market data for `hedgebot backtest --data FILE`: pure readers from a file to sorted
per-underlying arrays of (ts_ms, index price, options' mean IV).

Layouts, told apart by the header (README "Replaying recorded data"):

- hedgebot: timestamp, symbol, bid, ask, last [, mark, iv, index] (what `hedgebot record`
  writes, CSV or Parquet); timestamp epoch (s, ms, us or ns, told apart by size) or ISO 8601.
- tardis.dev quotes: exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,
  bid_amount (timestamps in microseconds); the price is the mid.
- tardis.dev derivative tickers: exchange,symbol,timestamp,local_timestamp,funding_timestamp,
  funding_rate,predicted_funding_rate,open_interest,last_price,index_price,mark_price; the price
  is index_price (else mark, else last).
- OHLCV: timestamp,open,high,low,close,volume (no symbol: one underlying); the price is close.

A row's underlying: the `--data-symbol U=SYMBOL` mappings when given (only those symbols count),
else the symbol's leading letters without a quote suffix (BTC-PERPETUAL, BTCUSDT, BTC/USDT:USDT
are BTC). Option symbols (BTC-27JUN26-60000-C) give IV only. A bad row is an error naming the
file, line, column, value and rule. Tolerated and counted (`Recorded.tolerated`, said by the
CLI): rows out of time order are sorted; of price rows at one timestamp the file's last is kept;
a move over JUMP_WARN-fold from one row to the next is kept and counted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import numpy.typing as npt

from bot.backtest.data_cells import JUMP_WARN, RANGE_MAX, CellError, number, timestamp
from bot.backtest.data_file import DataError as DataError  # re-exported: callers' one import
from bot.backtest.data_file import read_table

HEDGEBOT = ("timestamp", "symbol")
TARDIS_QUOTES = ("exchange", "symbol", "timestamp", "local_timestamp", "ask_price", "bid_price")
TARDIS_TICKERS = ("exchange", "symbol", "timestamp", "local_timestamp", "index_price")
OHLCV = ("timestamp", "open", "high", "low", "close")

_OPTION = re.compile(r"-\d+(\.\d+)?-[CP]$")
_QUOTES = ("USDT", "USDC", "USD", "PERP", "BUSD")


@dataclass(frozen=True, slots=True)
class Row:
    ts_ms: int
    symbol: str | None
    price: float  # the underlying's price this row gives (NaN for an option row)
    iv: float  # NaN when absent
    line: int = 0  # in the file, for what a price is told against the rows around it


@dataclass(slots=True)
class Recorded:
    """Per underlying, sorted by time: timestamps, index prices and the options' mean IV (NaN
    until an IV is seen; forward-filled after)."""

    ts_ms: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    price: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    iv: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    # per underlying: (price rows out of time order, sorted; rows at a timestamp already seen,
    # dropped; moves over JUMP_WARN-fold from the row before, kept)
    tolerated: dict[str, tuple[int, int, int]] = field(default_factory=dict)

    def span(self) -> tuple[int, int]:
        first = max(int(t[0]) for t in self.ts_ms.values())
        last = min(int(t[-1]) for t in self.ts_ms.values())
        return first, last

    def at(self, underlying: str, ts_ms: int) -> tuple[float, float]:
        """The last recorded price and IV at or before ts_ms (the first ones before the data)."""
        ts = self.ts_ms[underlying]
        i = max(int(np.searchsorted(ts, ts_ms, side="right")) - 1, 0)
        return float(self.price[underlying][i]), float(self.iv[underlying][i])


def notes(rec: Recorded) -> list[str]:
    """What the file's reading tolerated, for the operator to see (README "Recorded data")."""
    out = []
    for u, (late, dup, jumps) in sorted(rec.tolerated.items()):
        if late:
            out.append(f"{u}: {late} price row(s) out of time order, sorted by time")
        if dup:
            out.append(f"{u}: {dup} price row(s) at a timestamp seen before; the last kept")
        if jumps:
            out.append(
                f"{u}: {jumps} price row(s) over {JUMP_WARN:g}-fold from the row before, kept "
                "(a flash crash, or a bad tick or unit change to check)"
            )
    return out


def parse_mapping(items: Iterable[str]) -> dict[str, str]:
    """`--data-symbol U=SYMBOL` values to {SYMBOL: U}."""
    out: dict[str, str] = {}
    for item in items:
        u, sep, sym = item.partition("=")
        if not sep or not u.strip() or not sym.strip():
            raise DataError(f"--data-symbol: {item!r} is not UNDERLYING=SYMBOL")
        out[sym.strip()] = u.strip()
    return out


def underlying_of(symbol: str) -> str:
    head = re.split(r"[-/:_]", symbol, maxsplit=1)[0].upper()
    for q in _QUOTES:
        if head.endswith(q) and len(head) > len(q):
            return head[: -len(q)]
    return head


def load(
    path: Path,
    underlyings: Sequence[str],
    mapping: Mapping[str, str] | None = None,
) -> Recorded:
    """The file at `path` as per-underlying arrays for the configured `underlyings`."""
    rows = list(read_rows(path))
    return build(path, rows, underlyings, mapping or {})


def read_rows(path: Path) -> Iterator[Row]:
    if not path.is_file():
        raise DataError(f"{path}: {'a directory, not' if path.is_dir() else 'no such'} file")
    header, records = read_table(path)
    yield from _rows(path, header, records)


def _rows(path: Path, header: Sequence[str], records: Iterable[Sequence[object]]) -> Iterator[Row]:
    kind = layout(path, header)
    col = {h: i for i, h in enumerate(header)}
    for n, rec in enumerate(records, start=2):  # line 1 is the header
        if not rec or all(str(x).strip() == "" for x in rec):
            continue
        if len(rec) != len(header):
            raise DataError(f"{path}:{n}: {len(rec)} fields, the header has {len(header)}")
        yield _row(path, n, kind, col, rec)


_LAYOUTS: tuple[tuple[str, str, tuple[str, ...]], ...] = (  # kind, name, required columns
    ("tardis_quotes", "tardis quotes", TARDIS_QUOTES),
    ("tardis_tickers", "tardis derivative tickers", TARDIS_TICKERS),
    ("ohlcv", "OHLCV", OHLCV),
)


def layout(path: Path, header: Sequence[str]) -> str:
    h = set(header)
    for kind, _, need in _LAYOUTS:
        if h.issuperset(need):
            return kind
    if h.issuperset(HEDGEBOT) and ({"bid", "ask"} <= h or h & {"last", "mark", "index"}):
        return "hedgebot"
    if all(_numeric(x) for x in header if x):
        raise DataError(
            f"{path}:1: {','.join(header)} is data, not a header: the first line must name the "
            "columns (for OHLCV bars: timestamp,open,high,low,close,volume)"
        )
    # the layout the header comes closest to, and what it lacks
    cands: list[tuple[str, str, tuple[str, ...]]] = [
        *_LAYOUTS,
        ("hedgebot", "hedgebot", (*HEDGEBOT, "bid", "ask")),
    ]
    _, name, need = max(cands, key=lambda c: len(h & set(c[2])) / len(c[2]))
    missing = [c for c in need if c not in h]
    closest = f"; closest: {name}, missing column(s) {', '.join(missing)}"
    if name == "hedgebot":
        closest += " (or a last, mark or index column)"
    raise DataError(
        f"{path}:1: header {','.join(header)} is not a known layout (hedgebot: timestamp,symbol,"
        "bid,ask,last[,mark,iv,index]; tardis quotes or derivative tickers; OHLCV: "
        "timestamp,open,high,low,close,volume)" + (closest if len(missing) < len(need) else "")
    )


def _numeric(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _row(path: Path, n: int, kind: str, col: Mapping[str, int], rec: Sequence[object]) -> Row:
    def raw(name: str) -> str:
        i = col.get(name)
        return "" if i is None or rec[i] is None else str(rec[i]).strip()

    def num(name: str, rule: str = "price") -> float:
        try:
            return number(raw(name), rule)
        except CellError as e:  # the place is formatted only for an error: reading is hot
            raise DataError(f"{path}:{n}: column '{name}': {e}") from None

    try:
        ts = timestamp(raw("timestamp"), kind.startswith("tardis"))
    except CellError as e:
        raise DataError(f"{path}:{n}: column 'timestamp': {e}") from None
    if kind == "ohlcv":
        return Row(ts, raw("symbol") or None, _close(path, n, num), math.nan, n)
    symbol = raw("symbol")
    if not symbol:
        raise DataError(f"{path}:{n}: column 'symbol': empty")
    if _OPTION.search(symbol):  # its IV only: its own prices are not read
        return Row(ts, symbol, math.nan, num("iv", "iv"), n)
    if kind == "tardis_tickers":
        names = ["index_price", "mark_price", "last_price"]
        cands = [num(c) for c in names]
        iv = math.nan
    else:
        bid_col, ask_col = ("bid_price", "ask_price") if kind == "tardis_quotes" else ("bid", "ask")
        bid, ask = num(bid_col), num(ask_col)
        if bid > ask:
            raise DataError(f"{path}:{n}: column '{bid_col}': {bid} is above {ask_col} {ask}")
        names = ["index", bid_col, ask_col, "last", "mark"]
        cands = [num("index"), (bid + ask) / 2.0, num("last"), num("mark")]
        iv = num("iv", "iv")
    price = next((x for x in cands if not math.isnan(x)), math.nan)
    if math.isnan(price):
        given = ", ".join(f"{c} {raw(c)!r}" for c in names if c in col)
        need = {
            "tardis_tickers": "index_price, mark_price or last_price",
            "tardis_quotes": "bid_price and ask_price",
        }.get(kind, "index, bid and ask, last or mark")
        raise DataError(f"{path}:{n}: no price in the row (needs {need}; has {given})")
    return Row(ts, symbol, price, iv, n)


def _close(path: Path, n: int, num: Callable[..., float]) -> float:
    """An OHLCV bar's close, once the bar is consistent: low <= open, close <= high."""
    o, h, lo, c = num("open"), num("high"), num("low"), num("close")
    num("volume", "volume")
    if math.isnan(c):
        raise DataError(f"{path}:{n}: column 'close': empty, a price is required")
    if h < lo:
        raise DataError(f"{path}:{n}: column 'high': {h} is below low {lo}")
    for name, x in (("open", o), ("close", c)):
        if x < lo or x > h:
            raise DataError(
                f"{path}:{n}: column '{name}': {x} is outside the bar's low {lo} .. high {h}"
            )
    return c


def build(
    path: Path, rows: Sequence[Row], underlyings: Sequence[str], mapping: Mapping[str, str]
) -> Recorded:
    """Rows to per-underlying sorted arrays; every configured underlying needs prices."""
    if not rows:
        raise DataError(f"{path}: no data rows after the header")
    g = _grouped(path, rows, underlyings, mapping)
    out = Recorded()
    for u in underlyings:
        _check_prices(path, u, g)
        _add_series(path, u, g.prices[u], g.ivs[u], out)
    first, last = out.span()
    if first > last:  # no moment has every underlying's price
        spans = ", ".join(f"{u} {int(t[0])}..{int(t[-1])}" for u, t in out.ts_ms.items())
        raise DataError(f"{path}: the underlyings' data do not overlap in time (ms: {spans})")
    return out


@dataclass(slots=True)
class _Grouped:
    """The rows of each configured underlying: prices (ts_ms, price, file line), options' IVs
    (ts_ms, iv), the symbols its prices came from; and the file's first symbols with their
    underlying (to say what the file has)."""

    prices: dict[str, list[tuple[int, float, int]]]
    ivs: dict[str, list[tuple[int, float]]]
    sources: dict[str, set[str]]
    seen: dict[str, str | None]


def _grouped(
    path: Path, rows: Sequence[Row], underlyings: Sequence[str], mapping: Mapping[str, str]
) -> _Grouped:
    """Each row to its underlying (rows of other underlyings are skipped)."""
    g = _Grouped(
        {u: [] for u in underlyings},
        {u: [] for u in underlyings},
        {u: set() for u in underlyings},
        {},
    )
    only = underlyings[0] if len(underlyings) == 1 else None
    for r in rows:
        if r.symbol is None:
            u = only
            if u is None:
                raise DataError(
                    f"{path}: rows without a symbol (OHLCV) fit one underlying; "
                    f"the config has {', '.join(underlyings)}"
                )
        elif math.isnan(r.price):  # an option row: its underlying from the prefix
            u = mapping.get(r.symbol) or underlying_of(r.symbol)
        elif mapping:
            u = mapping.get(r.symbol)
        else:
            u = underlying_of(r.symbol)
        if len(g.seen) < 8 and r.symbol is not None:
            g.seen.setdefault(r.symbol, u)
        if u not in g.prices:
            continue
        if not math.isnan(r.iv):
            g.ivs[u].append((r.ts_ms, r.iv))
        if not math.isnan(r.price):
            g.prices[u].append((r.ts_ms, r.price, r.line))
            g.sources[u].add(r.symbol or "")
    return g


def _check_prices(path: Path, u: str, g: _Grouped) -> None:
    """An underlying needs prices, and from one symbol only."""
    if not g.prices[u]:
        raise DataError(
            f"{path}: no prices for underlying {u} (configured in sim.underlyings); map a "
            f"symbol with --data-symbol {u}=SYMBOL (the file has "
            + ", ".join(f"{s} ({x or 'unmapped'})" for s, x in list(g.seen.items())[:4])
            + ")"
        )
    sources = g.sources[u]
    if len(sources) > 1:
        raise DataError(
            f"{path}: underlying {u} has prices from {len(sources)} symbols "
            f"({', '.join(sorted(sources)[:4])}); pick one with --data-symbol {u}=SYMBOL"
        )


def _add_series(
    path: Path,
    u: str,
    prices: list[tuple[int, float, int]],
    ivs: list[tuple[int, float]],
    out: Recorded,
) -> None:
    """The underlying's rows sorted by time, one price per timestamp, with the IV at each."""
    raw_ts = np.array([p[0] for p in prices], dtype=np.int64)
    late = int(np.count_nonzero(raw_ts[1:] < np.maximum.accumulate(raw_ts)[:-1]))
    order = np.argsort(raw_ts, kind="stable")  # a tie keeps the file's order
    ts = raw_ts[order]
    # of rows at one timestamp, the file's last is the price then (as a replay's "last
    # price at or before" always read it): the others go
    keep = np.append(ts[1:] != ts[:-1], True)
    out.ts_ms[u] = ts[keep]
    out.price[u] = np.array([p[1] for p in prices], dtype=np.float64)[order][keep]
    jumps = _moves(path, u, out.price[u], np.array([p[2] for p in prices])[order][keep])
    out.tolerated[u] = (late, int(np.count_nonzero(~keep)), jumps)
    out.iv[u] = _iv_on(out.ts_ms[u], sorted(ivs, key=lambda p: p[0]))


def _moves(path: Path, u: str, price: npt.NDArray[np.float64], line: npt.NDArray[np.int_]) -> int:
    """The rows that move over JUMP_WARN-fold from the one before (real flash crashes do; so do
    bad ticks and unit changes, which the operator is told to check); refuses a range over
    RANGE_MAX-fold, which the replay cannot list."""
    ratio = price[1:] / price[:-1]
    jumps = int(np.count_nonzero((ratio > JUMP_WARN) | (ratio < 1.0 / JUMP_WARN)))
    lo, hi = int(np.argmin(price)), int(np.argmax(price))
    if price[hi] > RANGE_MAX * price[lo]:
        raise DataError(
            f"{path}:{line[hi]}: {u}'s price {price[hi]:g} is over {RANGE_MAX:g} times its "
            f"lowest, {price[lo]:g} at line {line[lo]}; a replay's prices stay within "
            f"{RANGE_MAX:g}-fold"
        )
    return jumps


def _iv_on(ts: npt.NDArray[np.int64], ivs: list[tuple[int, float]]) -> npt.NDArray[np.float64]:
    """The mean IV of the options at each timestamp, the last one carried to the price times."""
    out = np.full(len(ts), math.nan)
    if not ivs:
        return out
    times = sorted({t for t, _ in ivs})
    sums: dict[int, list[float]] = {}
    for t, v in ivs:
        sums.setdefault(t, []).append(v)
    means = np.array([sum(sums[t]) / len(sums[t]) for t in times])
    idx = np.searchsorted(np.array(times, dtype=np.int64), ts, side="right") - 1
    ok = idx >= 0
    out[ok] = means[idx[ok]]
    return out
