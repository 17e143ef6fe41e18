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
file, line, column, value and rule.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

HEDGEBOT = ("timestamp", "symbol")
TARDIS_QUOTES = ("exchange", "symbol", "timestamp", "local_timestamp", "ask_price", "bid_price")
TARDIS_TICKERS = ("exchange", "symbol", "timestamp", "local_timestamp", "index_price")
OHLCV = ("timestamp", "open", "high", "low", "close")

_OPTION = re.compile(r"-\d+(\.\d+)?-[CP]$")
_QUOTES = ("USDT", "USDC", "USD", "PERP", "BUSD")


class DataError(ValueError):
    """A bad data file or row: `file:line: column 'x': 'value' rule`."""


@dataclass(frozen=True, slots=True)
class Row:
    ts_ms: int
    symbol: str | None
    price: float  # the underlying's price this row gives (NaN for an option row)
    iv: float  # NaN when absent


@dataclass(slots=True)
class Recorded:
    """Per underlying, sorted by time: timestamps, index prices and the options' mean IV (NaN
    until an IV is seen; forward-filled after)."""

    ts_ms: dict[str, npt.NDArray[np.int64]] = field(default_factory=dict)
    price: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)
    iv: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)

    def span(self) -> tuple[int, int]:
        first = max(int(t[0]) for t in self.ts_ms.values())
        last = min(int(t[-1]) for t in self.ts_ms.values())
        return first, last

    def at(self, underlying: str, ts_ms: int) -> tuple[float, float]:
        """The last recorded price and IV at or before ts_ms (the first ones before the data)."""
        ts = self.ts_ms[underlying]
        i = max(int(np.searchsorted(ts, ts_ms, side="right")) - 1, 0)
        return float(self.price[underlying][i]), float(self.iv[underlying][i])


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
        raise DataError(f"{path}: no such file")
    if path.suffix.lower() in (".parquet", ".pq"):
        header, records = _parquet(path)
        yield from _rows(path, header, records)
        return
    with path.open(newline="") as f:
        reader = csv.reader(f)
        try:
            header = [h.strip() for h in next(reader)]
        except StopIteration:
            raise DataError(f"{path}: empty file, no header") from None
        yield from _rows(path, header, reader)


def _rows(path: Path, header: Sequence[str], records: Iterable[Sequence[object]]) -> Iterator[Row]:
    kind = layout(path, header)
    col = {h: i for i, h in enumerate(header)}
    for n, rec in enumerate(records, start=2):  # line 1 is the header
        if not rec or all(str(x).strip() == "" for x in rec):
            continue
        if len(rec) != len(header):
            raise DataError(f"{path}:{n}: {len(rec)} fields, the header has {len(header)}")
        yield _row(path, n, kind, col, rec)


def layout(path: Path, header: Sequence[str]) -> str:
    h = set(header)
    for name, need in (
        ("tardis_quotes", TARDIS_QUOTES),
        ("tardis_tickers", TARDIS_TICKERS),
        ("ohlcv", OHLCV),
    ):
        if h.issuperset(need):
            return name
    if h.issuperset(HEDGEBOT) and h & {"bid", "ask", "last", "mark", "index"}:
        return "hedgebot"
    raise DataError(
        f"{path}:1: header {','.join(header)} is not a known layout (hedgebot: timestamp,symbol,"
        "bid,ask,last[,mark,iv,index]; tardis quotes or derivative tickers; OHLCV: "
        "timestamp,open,high,low,close,volume)"
    )


def _row(path: Path, n: int, kind: str, col: Mapping[str, int], rec: Sequence[object]) -> Row:
    def raw(name: str) -> str:
        i = col.get(name)
        return "" if i is None or rec[i] is None else str(rec[i]).strip()

    def num(name: str, rule: str = "price") -> float:
        text = raw(name)
        if text == "" or text.lower() in ("nan", "null", "none"):
            return math.nan
        try:
            x = float(text)
        except ValueError:
            raise DataError(f"{path}:{n}: column '{name}': {text!r} is not a number") from None
        bad = not (0.0 < x <= 5.0) if rule == "iv" else (not math.isfinite(x) or x <= 0.0)
        if bad:
            what = "an IV in (0, 5]" if rule == "iv" else "a finite price > 0"
            raise DataError(f"{path}:{n}: column '{name}': {text!r} is not {what}")
        return x

    micro = kind.startswith("tardis")
    ts = _timestamp(path, n, raw("timestamp"), micro)
    if kind == "ohlcv":
        close = num("close")
        if math.isnan(close):
            raise DataError(f"{path}:{n}: column 'close': empty, a price is required")
        return Row(ts, raw("symbol") or None, close, math.nan)
    symbol = raw("symbol")
    if not symbol:
        raise DataError(f"{path}:{n}: column 'symbol': empty")
    if kind == "tardis_tickers":
        cands = [num("index_price"), num("mark_price"), num("last_price")]
        iv = math.nan
    else:
        bid_col, ask_col = ("bid_price", "ask_price") if kind == "tardis_quotes" else ("bid", "ask")
        bid, ask = num(bid_col), num(ask_col)
        if bid > ask:
            raise DataError(f"{path}:{n}: column '{bid_col}': {bid} is above {ask_col} {ask}")
        mid = (bid + ask) / 2.0
        cands = [num("index"), mid, num("last"), num("mark")]
        iv = num("iv", "iv")
    price = next((x for x in cands if not math.isnan(x)), math.nan)
    if _OPTION.search(symbol):
        return Row(ts, symbol, math.nan, iv)
    if math.isnan(price):
        raise DataError(f"{path}:{n}: no price in the row (need a bid and ask, last, or mark)")
    return Row(ts, symbol, price, iv)


def _timestamp(path: Path, n: int, text: str, micro: bool) -> int:
    if text == "":
        raise DataError(f"{path}:{n}: column 'timestamp': empty")
    try:
        x = float(text)
    except ValueError:
        try:
            dt = datetime.fromisoformat(text)
        except ValueError:
            raise DataError(
                f"{path}:{n}: column 'timestamp': {text!r} is neither epoch nor ISO 8601"
            ) from None
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)  # naive times are UTC
        return int(dt.timestamp() * 1000)
    if not math.isfinite(x) or x <= 0:
        raise DataError(f"{path}:{n}: column 'timestamp': {text!r} is not a positive epoch")
    if micro:
        return int(x // 1000)
    # Epoch unit by size: seconds until 5138 AD, then ms, us, ns.
    if x < 1e11:
        return round(x * 1000)
    if x < 1e14:
        return int(x)
    if x < 1e17:
        return int(x // 1000)
    return int(x // 1_000_000)


def build(
    path: Path, rows: Sequence[Row], underlyings: Sequence[str], mapping: Mapping[str, str]
) -> Recorded:
    """Rows to per-underlying sorted arrays; every configured underlying needs prices."""
    prices: dict[str, list[tuple[int, float]]] = {u: [] for u in underlyings}
    ivs: dict[str, list[tuple[int, float]]] = {u: [] for u in underlyings}
    sources: dict[str, set[str]] = {u: set() for u in underlyings}
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
        if u not in prices:
            continue
        if not math.isnan(r.iv):
            ivs[u].append((r.ts_ms, r.iv))
        if not math.isnan(r.price):
            prices[u].append((r.ts_ms, r.price))
            sources[u].add(r.symbol or "")
    out = Recorded()
    for u in underlyings:
        if not prices[u]:
            raise DataError(
                f"{path}: no prices for underlying {u} (configured in sim.underlyings); map a "
                f"symbol with --data-symbol {u}=SYMBOL"
            )
        if len(sources[u]) > 1:
            raise DataError(
                f"{path}: underlying {u} has prices from {len(sources[u])} symbols "
                f"({', '.join(sorted(sources[u])[:4])}); pick one with --data-symbol {u}=SYMBOL"
            )
        pts = sorted(prices[u], key=lambda p: p[0])
        ts = np.array([p[0] for p in pts], dtype=np.int64)
        out.ts_ms[u] = ts
        out.price[u] = np.array([p[1] for p in pts], dtype=np.float64)
        out.iv[u] = _iv_on(ts, sorted(ivs[u], key=lambda p: p[0]))
    return out


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


def _parquet(path: Path) -> tuple[list[str], list[list[object]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (the lab extra)") from None
    try:
        table = pq.read_table(path)
    except Exception as e:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    header = [str(c) for c in table.column_names]
    cols = [table.column(c).to_pylist() for c in header]
    return header, [list(r) for r in zip(*cols, strict=True)]
