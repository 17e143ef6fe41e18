"""Recorded data for `hedgebot backtest --data`: each reader on small files, bad rows named by
file, line and column, the symbol mapping, and the replay through `python -m bot backtest`."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from bot.backtest.data import DataError, load, parse_mapping, underlying_of
from bot.venues.sim.replay import ReplayModel
from tests.helpers import ROOT, clean_env

T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z


def _write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text.strip() + "\n")
    return path


def test_hedgebot_layout_mid_iv_and_option_rows(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "h.csv",
        f"""
timestamp,symbol,bid,ask,last,mark,iv
{T0 + 60_000},BTC-PERPETUAL,60010,60030,60020,,
{T0},BTC-PERPETUAL,59990,60010,60000,,
{T0},BTC-27JUN26-60000-C,0.05,0.06,,0.055,0.61
{T0},BTC-27JUN26-70000-C,0.02,0.03,,0.025,0.65
{T0 + 60_000},ETH-PERPETUAL,3000,3001,,,
""",
    )
    rec = load(path, ["BTC"])
    assert rec.ts_ms["BTC"].tolist() == [T0, T0 + 60_000]  # sorted
    assert rec.price["BTC"].tolist() == [60_000.0, 60_020.0]  # mid of bid and ask
    assert rec.iv["BTC"] == pytest.approx([0.63, 0.63])  # options' mean IV, carried forward
    assert rec.at("BTC", T0 + 30_000) == (60_000.0, pytest.approx(0.63))
    assert rec.at("BTC", T0 - 1)[0] == 60_000.0  # before the data: the first price


def test_iso_timestamps_and_seconds(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "iso.csv",
        """
timestamp,symbol,bid,ask,last
2026-01-01T00:00:00Z,BTCUSDT,,,60000
2026-01-01T00:01:00,BTCUSDT,,,60100
1767225720,BTCUSDT,,,60200
""",
    )
    rec = load(path, ["BTC"])
    assert rec.ts_ms["BTC"].tolist() == [T0, T0 + 60_000, T0 + 120_000]


def test_tardis_quotes_are_microseconds_and_mids(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "quotes.csv",
        f"""
exchange,symbol,timestamp,local_timestamp,ask_amount,ask_price,bid_price,bid_amount
deribit,BTC-PERPETUAL,{T0 * 1000},{T0 * 1000 + 5},1000,60010.5,60000.5,2000
deribit,BTC-PERPETUAL,{T0 * 1000 + 1_500_000},{T0 * 1000 + 1_500_009},10,60020,60010,20
""",
    )
    rec = load(path, ["BTC"])
    assert rec.ts_ms["BTC"].tolist() == [T0, T0 + 1_500]
    assert rec.price["BTC"].tolist() == [60_005.5, 60_015.0]


def test_tardis_derivative_tickers_use_the_index(tmp_path: Path) -> None:
    head = (
        "exchange,symbol,timestamp,local_timestamp,funding_timestamp,funding_rate,"
        "predicted_funding_rate,open_interest,last_price,index_price,mark_price"
    )
    path = _write(
        tmp_path,
        "tickers.csv",
        f"""
{head}
deribit,BTC-PERPETUAL,{T0 * 1000},{T0 * 1000},,0.0001,,1e8,60050,60000,60040
deribit,BTC-26JUN26,{T0 * 1000},{T0 * 1000},,,,1e7,61000,60000,61010
deribit,BTC-PERPETUAL,{T0 * 1000 + 60_000_000},{T0 * 1000},,0.0001,,1e8,60150,,60140
""",
    )
    # Two symbols give BTC prices: the file needs a mapping ...
    with pytest.raises(DataError, match="--data-symbol BTC=SYMBOL"):
        load(path, ["BTC"])
    rec = load(path, ["BTC"], parse_mapping(["BTC=BTC-PERPETUAL"]))
    # ... the index price, else the mark.
    assert rec.price["BTC"].tolist() == [60_000.0, 60_140.0]


def test_ohlcv_close_is_the_price(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "btc-1h.csv",
        f"""
timestamp,open,high,low,close,volume
{T0},60000,60500,59900,60200,12.5
{T0 + 3_600_000},60200,60300,59000,59100,30
""",
    )
    rec = load(path, ["BTC"])
    assert rec.price["BTC"].tolist() == [60_200.0, 59_100.0]
    with pytest.raises(DataError, match="fit one underlying"):
        load(path, ["BTC", "ETH"])


def test_parquet_reads_like_csv(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "h.parquet"
    table = pa.table(
        {
            "timestamp": pa.array([T0, T0 + 1_000], type=pa.int64()),
            "symbol": ["BTC/USDT:USDT", "BTC/USDT:USDT"],
            "bid": [59_999.0, 60_009.0],
            "ask": [60_001.0, 60_011.0],
            "last": [None, None],
        }
    )
    pq.write_table(table, path)
    rec = load(path, ["BTC"])
    assert rec.price["BTC"].tolist() == [60_000.0, 60_010.0]


@pytest.mark.parametrize(
    ("row", "where"),
    [
        (f"{T0},BTCUSDT,abc,60010,", "h.csv:3: column 'bid': 'abc' is not a number"),
        (f"{T0},BTCUSDT,-5,60010,", "h.csv:3: column 'bid': '-5' is not a finite price > 0"),
        (f"{T0},BTCUSDT,60020,60010,", "h.csv:3: column 'bid': 60020.0 is above ask 60010.0"),
        ("yesterday,BTCUSDT,1,2,", "h.csv:3: column 'timestamp': 'yesterday' is neither"),
        (f"{T0},BTCUSDT,1,2", "h.csv:3: 4 fields, the header has 5"),
        (f"{T0},,1,2,", "h.csv:3: column 'symbol': empty"),
        (f"{T0},BTCUSDT,,,", "h.csv:3: no price in the row"),
    ],
)
def test_bad_rows_name_file_line_and_column(tmp_path: Path, row: str, where: str) -> None:
    path = _write(tmp_path, "h.csv", f"timestamp,symbol,bid,ask,last\n{T0},BTCUSDT,1,2,\n{row}")
    with pytest.raises(DataError) as e:
        load(path, ["BTC"])
    assert where in str(e.value)


def test_bad_iv_unknown_header_missing_underlying(tmp_path: Path) -> None:
    iv = _write(tmp_path, "iv.csv", f"timestamp,symbol,bid,ask,iv\n{T0},BTC-1JAN27-1-C,1,2,61")
    with pytest.raises(DataError, match=r"iv.csv:2: column 'iv': '61' is not an IV in \(0, 5\]"):
        load(iv, ["BTC"])
    odd = _write(tmp_path, "odd.csv", "time,price\n1,2")
    with pytest.raises(DataError, match=r"odd\.csv:1: header time,price is not a known layout"):
        load(odd, ["BTC"])
    eth = _write(tmp_path, "eth.csv", f"timestamp,symbol,last\n{T0},ETHUSDT,3000")
    with pytest.raises(DataError, match="no prices for underlying BTC"):
        load(eth, ["BTC"])
    with pytest.raises(DataError, match="not UNDERLYING=SYMBOL"):
        parse_mapping(["BTC"])


def test_symbols_map_to_underlyings_by_prefix() -> None:
    for s in ("BTC-PERPETUAL", "BTCUSDT", "BTC/USDT:USDT", "btcusd_perp", "BTC-27JUN26-60000-C"):
        assert underlying_of(s) == "BTC"


def test_replay_model_steps_to_the_recorded_price_and_iv(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "r.csv",
        f"""
timestamp,symbol,last,iv
{T0},BTC-PERP,60000,
{T0 + 10_000},BTC-PERP,61000,
{T0 + 10_000},BTC-1JAN27-60000-P,,0.7
""",
    )
    model = ReplayModel(load(path, ["BTC"]), {"BTC": 0.5})
    rng = np.random.default_rng(0)
    state = rng.bit_generator.state
    assert model.advance([1.0], T0, T0 + 5_000, rng) == [60_000.0] and model.vols["BTC"] == 0.5
    assert model.advance([1.0], T0, T0 + 10_000, rng) == [61_000.0] and model.vols["BTC"] == 0.7
    assert rng.bit_generator.state == state  # a replay draws nothing


def _backtest(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--config", "config/paper.toml", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=300,
    )


def test_backtest_replays_the_sample_file(tmp_path: Path) -> None:
    """The README's example, shortened: the hedger on the sample's recorded minute closes."""
    out = tmp_path / "out"
    r = _backtest("--data", "data/sample/btc-1m.csv", "--days", "0.25", "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    (path,) = report["per_path"]
    rows = (ROOT / "data/sample/btc-1m.csv").read_text().splitlines()[1:]
    closes = {int(x.split(",")[0]): float(x.split(",")[4]) for x in rows}
    start = min(closes)
    assert path["price_start"] == closes[start]
    assert path["price_end"] == closes[start + 6 * 3_600_000]  # 0.25 days of minutes
    assert report["days"] == pytest.approx(0.25)
    assert report["market"] == {"data": "data/sample/btc-1m.csv"}
    # The same file gives the same report.
    again = tmp_path / "again"
    r2 = _backtest("--data", "data/sample/btc-1m.csv", "--days", "0.25", "--out", str(again))
    assert r2.returncode == 0, r2.stderr
    assert json.loads((again / "report.json").read_text())["per_path"] == report["per_path"]


def test_backtest_market_flag_and_bad_data(tmp_path: Path) -> None:
    out = tmp_path / "out"
    r = _backtest("--market", "heston", "--days", "0.1", "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["market"] == {"model": "heston"}
    # The options' IV moves with heston's variance: the attribution has a vega part.
    parts = report["summary"]["attribution_usd"]
    assert parts["vega"] != 0.0 and abs(parts["residual"]) < abs(parts["theta"])
    bad = _write(tmp_path, "bad.csv", f"timestamp,open,high,low,close,volume\n{T0},1,1,1,x,1")
    r = _backtest("--data", str(bad), "--out", str(out))
    assert r.returncode == 2
    assert "bad.csv:2: column 'close': 'x' is not a number" in r.stderr
    r = _backtest("--data", str(bad), "--market", "gbm")
    assert r.returncode == 2 and "--market and --data" in r.stderr


IRREGULAR = f"""
timestamp,symbol,bid,ask,last
{T0},BTC-PERPETUAL,59990,60010,60000
{T0 + 5_000},BTC-PERPETUAL,60090,60110,60100
{T0 + 12_000},BTC-PERPETUAL,60190,60210,60200
{T0 + 12_000},BTC-27JUN26-60000-C,0.05,0.06,
{T0 + 60_000},BTC-PERPETUAL,60590,60610,60600
{T0 + 61_000},BTC-PERPETUAL,60490,60510,60500
"""


def _events(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_a_replay_ticks_at_the_files_timestamps_and_a_long_gap_halts(tmp_path: Path) -> None:
    """Gaps of 5 s, 7 s, 48 s and 1 s; config/paper.toml's stale limit is 15 s: the 48 s gap
    halts trading as stale from 15 s after the last data (as the daemon's heartbeat would)
    until the next row resumes it."""
    data = _write(tmp_path, "irregular.csv", IRREGULAR)
    out = tmp_path / "out"
    r = _backtest("--data", str(data), "--events", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert "ticks at the file's timestamps" in r.stdout
    report = json.loads((out / "report.json").read_text())
    (path,) = report["per_path"]
    assert path["ticks"] == 5  # one per distinct timestamp, the start included
    assert path["stale_halts"] == report["summary"]["stale_halts"] == 1
    assert report["tick_ms"] == 0 and path["price_end"] == 60_500.0
    events = _events(out / f"events-{path['seed']}.jsonl")
    halts = [(e["event"], e["ts_ms"]) for e in events if str(e["event"]).startswith("trading.")]
    assert halts[-2:] == [("trading.halted", T0 + 27_001), ("trading.resumed", T0 + 60_000)]
    assert [e["reason"] for e in events if e["event"] == "trading.halted"] == ["stale_market_data"]
    seen = {e["ts_ms"] for e in events if e["event"] == "hedge.decision"}
    # in the gap, one decision: the one that found the data stale
    assert {t for t in seen if T0 + 12_000 < t < T0 + 60_000} == {T0 + 27_001}
    sent = [e["ts_ms"] for e in events if e["event"] == "order.sent"]
    assert all(not (T0 + 27_001 <= t < T0 + 60_000) for t in sent)  # nothing sent while stale


def test_tick_ms_with_data_resamples_on_a_grid(tmp_path: Path) -> None:
    data = _write(tmp_path, "irregular.csv", IRREGULAR)
    out = tmp_path / "out"
    r = _backtest("--data", str(data), "--tick-ms", "30000", "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    (path,) = report["per_path"]
    # T0 + 30 s, 60 s, 90 s: the last price at or before each. Ticks 30 s apart with a 15 s
    # limit: stale before the 2nd and 3rd (before the 1st there is no data yet, not stale data).
    assert report["tick_ms"] == 30_000 and path["ticks"] == 3
    assert path["price_end"] == 60_500.0 and path["stale_halts"] == 2
    r = _backtest("--data", str(data), "--tick-ms", "0", "--out", str(out))
    assert r.returncode == 2 and "--tick-ms: must be >= 1 (got 0)" in r.stderr


def test_a_synthetic_market_sampled_coarser_than_the_stale_limit_is_not_stale(
    tmp_path: Path,
) -> None:
    """config/paper.toml's stale limit is 15 s and a backtest looks at its synthetic market
    once a minute: the simulated exchange is quoting all along, so no tick is stale data."""
    out = tmp_path / "out"
    r = _backtest("--days", "0.2", "--paths", "1", "--events", "--out", str(out))
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    assert report["summary"]["stale_halts"] == 0
    assert report["summary"]["orders"]["mean"] > 0, "the hedger trades"
    events = [json.loads(line) for p in out.glob("events*") for line in p.read_text().splitlines()]
    assert events and not [e for e in events if e.get("event") == "trading.halted"]


def test_a_one_coin_file_replays_a_config_that_lists_more_coins(tmp_path: Path) -> None:
    """paper.toml plus an ETH underlying (and a correlation naming it) that nothing holds or
    hedges: the BTC file replays it, ETH left out with a note; the report is the one of the
    config without ETH. An underlying that is held must still have its prices."""
    paper = (ROOT / "config/paper.toml").read_text()
    extra = """
[sim.underlyings.ETH]
price = 3_000.0
vol = 0.8
[sim.correlation]
underlyings = ["BTC", "ETH"]
matrix = [[1.0, 0.7], [0.7, 1.0]]
"""
    cfg = _write(tmp_path, "two.toml", paper.replace("[accounts.sim]", extra + "[accounts.sim]"))
    args = ("--data", "data/sample/btc-1m.csv", "--days", "0.1")
    r = _backtest(*args, "--out", str(tmp_path / "plain"))
    two = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "backtest",
            "--config",
            str(cfg),
            *args,
            "--out",
            str(tmp_path / "two"),
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=300,
    )
    assert r.returncode == 0 and two.returncode == 0, two.stderr
    assert "--data: ETH (neither held nor hedged) left out" in two.stderr
    plain = json.loads((tmp_path / "plain/report.json").read_text())["per_path"]
    assert json.loads((tmp_path / "two/report.json").read_text())["per_path"] == plain
    held = cfg.read_text() + '\n[[positions]]\nunderlying = "ETH"\nkind = "spot"\nqty = 1\n'
    cfg.write_text(held)
    r = subprocess.run(
        [sys.executable, "-m", "bot", "backtest", "--config", str(cfg), *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=300,
    )
    assert r.returncode == 2 and "fit one underlying" in r.stderr, r.stderr
