"""Bad recorded-market files for `hedgebot backtest --data`: each is refused with the file, line,
column, value and rule (never a traceback), or tolerated as README "Recorded data" says and
said on stderr; the containers (gzip, BOM, CRLF, Parquet dtypes) read like plain CSV."""

from __future__ import annotations

import gzip
import json
import random
from pathlib import Path

import pytest

from bot.backtest.data import DataError, load, notes
from tests.test_backtest_data import T0, _backtest, _write

H = "timestamp,symbol,bid,ask,last"
OHLCV = "timestamp,open,high,low,close,volume"
TQ = "exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount"


def _quotes(n: int = 5, step_ms: int = 60_000) -> str:
    return "".join(f"{T0 + i * step_ms},BTCUSDT,{60_000 + i},{60_002 + i},\n" for i in range(n))


def _refused(path: Path, where: str) -> None:
    with pytest.raises(DataError) as e:
        load(path, ["BTC"])
    assert where in str(e.value), str(e.value)


@pytest.mark.parametrize(
    ("name", "text", "where"),
    [
        ("empty.csv", "", "empty.csv: empty file, no header"),
        ("blank.csv", "\n\n", "blank.csv:1: blank, the first line must be the header"),
        ("header.csv", H + "\n", "header.csv: no data rows after the header"),
        ("odd.csv", "timestamp,symbol,bid\n1,X,1\n", "closest: hedgebot, missing column(s) ask"),
        (
            "tq.csv",
            "exchange,symbol,timestamp,local_timestamp,ask_price\n",
            "closest: tardis quotes, missing column(s) bid_price",
        ),
        (
            "binance-klines.csv",
            f"{T0},60000,60100,59900,60050,12.5,{T0 + 59_999},750000,100,6,360000,0\n",
            f"binance-klines.csv:1: {T0},60000,60100,59900,60050,12.5,{T0 + 59_999},750000,100,"
            "6,360000,0 is data, not a header",
        ),
        ("twice.csv", H + ",bid\n", "twice.csv:1: column 'bid' appears twice in the header"),
        ("nan.csv", f"{H}\n{T0},BTCUSDT,nan,60000,\n", "nan.csv:2: no price in the row"),
        ("inf.csv", f"{H}\n{T0},BTCUSDT,inf,inf,\n", "'inf' is not a finite price > 0"),
        ("zero.csv", f"{H}\n{T0},BTCUSDT,0,1,\n", "zero.csv:2: column 'bid': '0' is not"),
        ("huge.csv", f"{H}\n{T0},BTCUSDT,1e300,1e300,\n", "'1e300' is outside [1e-06, 1e+12]"),
        ("tiny.csv", f"{H}\n{T0},BTCUSDT,,,1e-9\n", "column 'last': '1e-9' is outside"),
        ("crossed.csv", f"{H}\n{T0},BTCUSDT,60010,60000,\n", "'bid': 60010.0 is above ask"),
        ("t1970.csv", f"{H}\n5,BTCUSDT,1,2,\n", "t1970.csv:2: column 'timestamp': '5' is not"),
        ("t1e30.csv", f"{H}\n1e30,BTCUSDT,1,2,\n", "'1e30' is not between 2000 and 2100"),
        ("iso.csv", f"{H}\n1999-12-31,BTCUSDT,1,2,\n", "'1999-12-31' is not between 2000"),
        (
            "tardis_ms.csv",
            f"{TQ}\nderibit,BTC-PERPETUAL,{T0},{T0},1,60001,60000,1\n",
            f"tardis_ms.csv:2: column 'timestamp': '{T0}' is not epoch microseconds",
        ),
        (
            "hl.csv",
            f"{OHLCV}\n{T0},60000,59000,60100,60000,1\n",
            "hl.csv:2: column 'high': 59000.0 is below low 60100.0",
        ),
        (
            "close.csv",
            f"{OHLCV}\n{T0},60000,60100,59900,70000,1\n",
            "column 'close': 70000.0 is outside the bar's low 59900.0 .. high 60100.0",
        ),
        ("vol.csv", f"{OHLCV}\n{T0},1,1,1,1,-1\n", "column 'volume': '-1' is not a finite volume"),
        ("open.csv", f"{OHLCV}\n{T0},x,1,1,1,1\n", "open.csv:2: column 'open': 'x' is not a"),
        (
            "drift.csv",
            H + "\n" + "".join(f"{T0 + i * 1000},BTCUSDT,,,{60_000 / 5**i:g}\n" for i in range(7)),
            "is over 10000 times its lowest",
        ),
        (
            "eth.csv",
            f"{H}\n{T0},ETHUSDT,3000,3001,\n",
            "no prices for underlying BTC (configured in sim.underlyings); map a symbol with "
            "--data-symbol BTC=SYMBOL (the file has ETHUSDT (ETH))",
        ),
    ],
)
def test_bad_files_are_refused_naming_where_and_why(
    tmp_path: Path, name: str, text: str, where: str
) -> None:
    path = tmp_path / name
    path.write_text(text)
    _refused(path, where)


def test_underlyings_that_never_overlap_and_rows_without_a_price(tmp_path: Path) -> None:
    hour = 3_600_000
    apart = _write(tmp_path, "apart.csv", f"{H}\n{T0},BTCUSDT,,,60000\n{T0 + hour},ETHUSDT,,,3000")
    with pytest.raises(DataError, match=r"apart\.csv: the underlyings' data do not overlap"):
        load(apart, ["BTC", "ETH"])
    head = (
        "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
        "predicted_funding_rate,open_interest,last_price,index_price,mark_price"
    )
    t = _write(tmp_path, "t.csv", f"{head}\nderibit,BTC-PERPETUAL,{T0 * 1000},{T0 * 1000},,,,,,,")
    _refused(
        t,
        "t.csv:2: no price in the row (needs index_price, mark_price or last_price; has "
        "index_price '', mark_price '', last_price '')",
    )


def test_bytes_that_are_not_utf8_csv_are_named_by_line(tmp_path: Path) -> None:
    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"{H}\n{T0},BTCUSDT,1,2,\n{T0},BTC\xe9,1,2,\n".encode("latin-1"))
    _refused(latin, "latin.csv:3: byte 0xe9 at character 18 is not UTF-8")
    broken = tmp_path / "broken.csv.gz"
    broken.write_bytes(gzip.compress((H + "\n" + _quotes(200)).encode())[:200])
    _refused(broken, "not a readable gzip-compressed CSV file")
    big = tmp_path / "big.csv"
    big.write_text(f'{H}\n{T0},BTCUSDT,1,2,"{"x" * 200_000}"\n')
    _refused(big, "big.csv:2: not valid CSV (field larger than field limit")
    fake = tmp_path / "fake.parquet"
    fake.write_text(H + "\n")
    _refused(fake, "fake.parquet: not a readable Parquet file")
    _refused(tmp_path, f"{tmp_path}: a directory, not file")


def test_containers_and_line_ends_read_like_plain_csv(tmp_path: Path) -> None:
    plain = _write(tmp_path, "plain.csv", H + "\n" + _quotes())
    want = load(plain, ["BTC"])
    variants = {
        "crlf.csv": (H + "\n" + _quotes()).replace("\n", "\r\n").encode(),
        "bom.csv": ("\ufeff" + H + "\n" + _quotes()).encode(),
        "upper.csv": (H.upper().replace(",", " , ") + "\n" + _quotes() + "\n  \n\n").encode(),
        "plain.csv.gz": gzip.compress(plain.read_bytes()),
        "gz_without_the_name.csv": gzip.compress(plain.read_bytes()),
    }
    for name, data in variants.items():
        path = tmp_path / name
        path.write_bytes(data)
        got = load(path, ["BTC"])
        assert got.ts_ms["BTC"].tolist() == want.ts_ms["BTC"].tolist(), name
        assert got.price["BTC"].tolist() == want.price["BTC"].tolist(), name


def test_tardis_quotes_gzipped_as_tardis_ships_them(tmp_path: Path) -> None:
    rows = "".join(
        f"deribit,BTC-PERPETUAL,{(T0 + i * 1000) * 1000},{(T0 + i * 1000) * 1000 + 7},5,"
        f"{60_001 + i},{60_000 + i},5\n"
        for i in range(3)
    )
    path = tmp_path / "deribit_quotes_2026-01-01_BTC-PERPETUAL.csv.gz"
    path.write_bytes(gzip.compress((TQ + "\n" + rows).encode()))
    rec = load(path, ["BTC"])
    assert rec.ts_ms["BTC"].tolist() == [T0, T0 + 1000, T0 + 2000]
    assert rec.price["BTC"].tolist() == [60_000.5, 60_001.5, 60_002.5]


def test_parquet_dtypes(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    ts = [T0, T0 + 60_000]

    def table(name: str, **cols: object) -> Path:
        base: dict[str, object] = {"timestamp": ts, "symbol": ["BTCUSDT"] * 2}
        base.update({"bid": [60_000.0, 60_010.0], "ask": [60_002.0, 60_012.0]})
        base.update(cols)
        path = tmp_path / name
        pq.write_table(pa.table(base), path)
        return path

    # a timestamp column, string prices: read as the values they hold
    stamp = pa.array(ts, type=pa.timestamp("ms", tz="UTC"))
    for path in (table("ts.parquet", timestamp=stamp), table("s.parquet", bid=["60000", "60010"])):
        rec = load(path, ["BTC"])
        assert rec.ts_ms["BTC"].tolist() == ts and rec.price["BTC"].tolist() == [60_001, 60_011]
    _refused(table("b.parquet", bid=[True, True]), "b.parquet:2: column 'bid': 'True' is not a")
    # milliseconds written as a nanosecond timestamp type read as 1970: a wrong unit, refused
    ns = pa.array(ts, type=pa.timestamp("ns"))
    _refused(table("ns.parquet", timestamp=ns), "column 'timestamp': '1970-01-01 00:29:27")
    empty = tmp_path / "e.parquet"
    pq.write_table(
        pa.table({"timestamp": pa.array([], pa.int64()), "symbol": [], "last": []}), empty
    )
    _refused(empty, "e.parquet: no data rows after the header")


def test_out_of_order_and_repeated_timestamps_are_sorted_kept_last_and_counted(
    tmp_path: Path,
) -> None:
    path = _write(
        tmp_path,
        "messy.csv",
        f"""
{H}
{T0 + 120_000},BTCUSDT,,,60200
{T0},BTCUSDT,,,60000
{T0 + 60_000},BTCUSDT,,,60100
{T0 + 60_000},BTCUSDT,,,60150
{T0 + 180_000},BTCUSDT,,,60300
""",
    )
    rec = load(path, ["BTC"])
    assert rec.ts_ms["BTC"].tolist() == [T0, T0 + 60_000, T0 + 120_000, T0 + 180_000]
    assert rec.price["BTC"].tolist() == [60_000, 60_150, 60_200, 60_300]  # the file's last
    assert rec.tolerated["BTC"] == (3, 1, 0)
    assert notes(rec) == [
        "BTC: 3 price row(s) out of time order, sorted by time",
        "BTC: 1 price row(s) at a timestamp seen before; the last kept",
    ]
    assert notes(load(_write(tmp_path, "ok.csv", H + "\n" + _quotes()), ["BTC"])) == []


def test_a_move_over_ten_fold_is_kept_and_reported(tmp_path: Path) -> None:
    """Real markets have flash-crashed over 1,000-fold in one print: the row is replayed as
    recorded and the operator is told to look (a bad tick or a unit change looks the same)."""
    rows = [60_000, 59_900, 500, 59_800, 59_850]
    text = H + "\n" + "".join(f"{T0 + i * 60_000},BTCUSDT,,,{p}\n" for i, p in enumerate(rows))
    rec = load(_write(tmp_path, "crash.csv", text), ["BTC"])
    assert rec.price["BTC"].tolist() == rows
    assert rec.tolerated["BTC"] == (0, 0, 2)  # down to 500 and back up
    assert notes(rec) == [
        "BTC: 2 price row(s) over 10-fold from the row before, kept (a flash crash, or a bad "
        "tick or unit change to check)"
    ]


def test_option_rows_give_iv_only_their_prices_are_not_read(tmp_path: Path) -> None:
    """A real option book can be empty, zero or crossed: none of it is the underlying's price."""
    path = _write(
        tmp_path,
        "opts.csv",
        f"""
timestamp,symbol,bid,ask,last,iv
{T0},BTC-PERPETUAL,59990,60010,,
{T0},BTC-27JUN26-60000-C,0.06,0.05,,0.6
{T0 + 1000},BTC-27JUN26-90000-C,0,,,0.8
{T0 + 1000},BTC-PERPETUAL,59990,60010,,
""",
    )
    rec = load(path, ["BTC"])
    assert rec.iv["BTC"].tolist() == pytest.approx([0.6, 0.8])


def test_random_corruption_is_a_data_error_or_a_clean_load(tmp_path: Path) -> None:
    """Mutated valid files of every layout: DataError or a load, never another exception."""
    rng = random.Random(7)
    bases = [
        H + "\n" + _quotes(20),
        TQ
        + "\n"
        + "".join(
            f"deribit,BTC-PERPETUAL,{(T0 + i * 1000) * 1000},{(T0 + i * 1000) * 1000},1,"
            f"{60_002 + i},{60_000 + i},1\n"
            for i in range(20)
        ),
        OHLCV + "\n" + "".join(f"{T0 + i * 60_000},60000,60100,59900,60050,1\n" for i in range(20)),
    ]
    pieces = [b"", b"x", b"nan", b"inf", b"-1", b"0", b"1e308", b",", b"\n", b"\r", b'"', b"\x00"]
    pieces += [b"\xef\xbb\xbf", b"\xff", b"2026-01-01", b"99999999999999999999", b" ", b"1"]
    loaded = refused = 0
    for i in range(400):
        data = bytearray(rng.choice(bases).encode())
        for _ in range(rng.randint(1, 4)):
            at = rng.randrange(len(data) + 1)
            if rng.random() < 0.5:
                data[at:at] = rng.choice(pieces)
            else:
                del data[at : at + rng.randint(1, 8)]
        raw = bytes(data)
        path = tmp_path / f"f{i}.csv"
        path.write_bytes(gzip.compress(raw) if i % 5 == 0 else raw)
        try:
            rec = load(path, ["BTC"])
        except DataError:
            refused += 1
        else:
            loaded += 1
            assert all(t.size and (t[1:] > t[:-1]).all() for t in rec.ts_ms.values())
    assert loaded and refused  # the mutations are neither all fatal nor all harmless


def test_the_cli_refuses_bad_files_and_says_what_it_tolerated(tmp_path: Path) -> None:
    """Through `python -m bot backtest`: exit 2 and one line naming the problem, no traceback;
    a gzipped tardis file runs; a sorted file says so on stderr."""
    latin = tmp_path / "latin.csv"
    latin.write_bytes(f"{H}\n{T0},BTC\xe9,1,2,\n".encode("latin-1"))
    hl = _write(tmp_path, "hl.csv", f"{OHLCV}\n{T0},60000,59000,60100,60000,1")
    for path, where in (
        (latin, "latin.csv:2: byte 0xe9 at character 18 is not UTF-8"),
        (hl, "hl.csv:2: column 'high': 59000.0 is below low 60100.0"),
        (tmp_path / "none.csv", "none.csv: no such file"),
    ):
        r = _backtest("--data", str(path), "--out", str(tmp_path / "out"))
        assert r.returncode == 2, r.stderr
        assert "Traceback" not in r.stderr and where in r.stderr
    rows = "".join(
        f"deribit,BTC-PERPETUAL,{(T0 + i * 5000) * 1000},{(T0 + i * 5000) * 1000},1,"
        f"{60_001 + i},{60_000 + i},1\n"
        for i in (0, 2, 1, 3, 4)
    )
    gz = tmp_path / "quotes.csv.gz"
    gz.write_bytes(gzip.compress((TQ + "\n" + rows).encode()))
    out = tmp_path / "gz"
    r = _backtest("--data", str(gz), "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert f"--data: {gz}: BTC: 1 price row(s) out of time order, sorted by time" in r.stderr
    (path,) = json.loads((out / "report.json").read_text())["per_path"]
    assert path["ticks"] == 5 and path["price_end"] == 60_004.5
