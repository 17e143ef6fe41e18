"""Bad command lines to `hedgebot sweep`, `backtest` and `record`, through the real entry point:
exit 2, a message naming the flag, the value and the rule, never a traceback, and nothing run
(or written) before the check."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, clean_env, interrupt_when
from tests.test_sweep_cli import config

pytestmark = pytest.mark.slow

GRID = "hedge.BTC.policy.band=0.1"


def hedgebot(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *argv],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=120,
    )


def refused(r: subprocess.CompletedProcess[str], *words: str) -> None:
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    assert "Traceback" not in r.stderr + r.stdout, r.stderr
    for w in words:
        assert w in r.stderr, (w, r.stderr)


@pytest.mark.parametrize(
    ("extra", "words"),
    [
        (["--days", "inf"], ["--days: must be a finite number > 0 (got inf)"]),
        (["--days", "nan"], ["--days: must be a finite number > 0 (got nan)"]),
        (["--days", "-1e3"], ["--days: must be a finite number > 0 (got -1000.0)"]),
        (["--days", "1e300"], ["--days: must be <= 3650 (got 1e+300)"]),
        (["--days", "0.00001"], ["--days: a path must span at least one tick", "864 ms"]),
        (["--tick-ms", "99999999999999"], ["at least one tick", "99999999999999 ms"]),
        (["--tick-ms", "1", "--days", "3000"], ["--tick-ms:", "ticks a path; must be <= 1e+09"]),
        (["--seed", "-1"], ["--seed: must be >= 0 (got -1)"]),
        (["--seed", "1.5"], ["argument --seed: invalid int value: '1.5'"]),
        (["--paths", "100000000000"], ["--paths: must be <= 100000 (got 100000000000)"]),
        (["--paths", "0"], ["--paths: must be >= 1 (got 0)"]),
        (["--jobs", "0"], ["--jobs: must be >= 1 (got 0)"]),
        (["--jobs", "100000"], ["--jobs: must be <= ", "cores (got 100000)"]),
        (["--market", "lognormal"], ["argument --market: invalid choice: 'lognormal'"]),
    ],
)
@pytest.mark.parametrize("command", ["backtest", "sweep"])
def test_bad_path_arguments(
    tmp_path: Path, command: str, extra: list[str], words: list[str]
) -> None:
    grid = ["--grid", GRID] if command == "sweep" else []
    out = tmp_path / "out"
    r = hedgebot(command, "--config", str(config(tmp_path)), *grid, "--out", str(out), *extra)
    refused(r, *words)
    assert not out.exists()  # refused before anything ran or was written


@pytest.mark.parametrize(
    ("grids", "words"),
    [
        (["hedge.BTC.policy.band=0.1:1:1000000000"], ["the count n must be <= 10000"]),
        (
            ["hedge.BTC.policy.band=0.1:1:1000", "hedge.BTC.policy.band_lower=0.1:1:1000"],
            ["--grid: 1000000 combinations; the grids' product must be <= 10000"],
        ),
        (["hedge.BTC.policy.band=0.1:1:0"], ["the count n must be >= 1 (got 0)"]),
        (["hedge.BTC.policy.band=0.1:1:-2"], ["the count n must be >= 1 (got -2)"]),
        (["=1:2:3"], ["'=1:2:3': must be path=a:b:n"]),
        (["a.b="], ["'a.b=': must be path=a:b:n"]),
        (["hedge.BTC.policy.band=a:b:3"], ["range ends must be numbers (got 'a:b:3')"]),
        (["hedge.BTC.policy.band=0.1,0.2", "hedge.BTC.policy.band=0.3"], ["given twice"]),
        (["hedge.ETH.policy.band=0.1,0.2"], ["hedge.ETH: no such setting"]),
        (["hedge.BTC.policy.kind=bogus"], ["unknown policy kind", "(got 'bogus')"]),
    ],
)
def test_bad_grids(tmp_path: Path, grids: list[str], words: list[str]) -> None:
    out = tmp_path / "out"
    args = [x for g in grids for x in ("--grid", g)]
    r = hedgebot("sweep", "--config", str(config(tmp_path)), *args, "--out", str(out))
    refused(r, *words)
    assert not (out / "results.jsonl").exists()


def test_a_sweep_too_big_for_its_paths(tmp_path: Path) -> None:
    grid = "hedge.BTC.policy.band=0.1:1:1000"
    r = hedgebot("sweep", "-c", str(config(tmp_path)), "--grid", grid, "--paths", "2000")
    refused(r, "--paths: 1000 combination(s) x 2000 path(s) is 2000000 runs; must be <= 1000000")


@pytest.mark.parametrize("command", ["backtest", "sweep"])
def test_an_out_that_cannot_be_the_result_folder(tmp_path: Path, command: str) -> None:
    cfg = config(tmp_path)
    grid = ["--grid", GRID] if command == "sweep" else []
    a_file = tmp_path / "a-file"
    a_file.write_text("kept\n")
    for out, why in ((a_file, "File exists"), (a_file / "sub", "Not a directory")):
        r = hedgebot(command, "-c", str(cfg), *grid, "--days", "0.05", "--out", str(out))
        refused(r, "--out: cannot be made a folder", why, repr(str(out)))
    assert a_file.read_text() == "kept\n"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _junk_server(server: socket.socket) -> None:
    """Answers every connection with bytes no Dask scheduler would send."""
    while True:
        try:
            conn, _ = server.accept()
        except OSError:
            return
        with conn:
            conn.sendall(b"\xff" * 64)
            time.sleep(0.5)


@pytest.mark.parametrize(
    "address",
    ["localhost:8786", "tcp://", "tcp://127.0.0.1:abc", "tcp://127.0.0.1:99999", "foo://x:1"],
)
def test_a_malformed_scheduler_address(tmp_path: Path, address: str) -> None:
    r = hedgebot("sweep", "-c", str(config(tmp_path)), "--grid", GRID, "--scheduler", address)
    refused(r, "--scheduler: must be an address like tcp://HOST:PORT", repr(address))


def test_an_unreachable_or_foreign_scheduler_fails_fast(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    out = tmp_path / "out"
    sweep = ["sweep", "-c", str(cfg), "--grid", GRID, "--paths", "1", "--days", "0.05"]
    started = time.monotonic()
    r = hedgebot(*sweep, "--out", str(out), "--scheduler", f"tcp://127.0.0.1:{free_port()}")
    refused(r, "--scheduler: cannot reach 127.0.0.1:", "Connection refused")
    r = hedgebot(*sweep, "--out", str(out), "--scheduler", "tcp://no-such-host.invalid:8786")
    refused(r, "--scheduler: cannot reach no-such-host.invalid:8786")
    assert time.monotonic() - started < 30  # not Dask's 15 s connect timeout each
    with socket.create_server(("127.0.0.1", 0)) as server:
        threading.Thread(target=_junk_server, args=(server,), daemon=True).start()
        port = server.getsockname()[1]
        r = hedgebot(*sweep, "--out", str(out), "--scheduler", f"tcp://127.0.0.1:{port}")
    refused(r, f"--scheduler: cannot use tcp://127.0.0.1:{port}")


@pytest.mark.parametrize(
    ("value", "words"),
    [
        ("-1", "--risk-budget-usd: must be >= 0 (got -1.0)"),
        ("-1e3", "--risk-budget-usd: must be >= 0 (got -1000.0)"),
        ("nan", "--risk-budget-usd: must be >= 0 (got nan)"),
        ("x", "argument --risk-budget-usd: invalid float value: 'x'"),
    ],
)
def test_a_bad_risk_budget(tmp_path: Path, value: str, words: str) -> None:
    r = hedgebot("sweep", "-c", str(config(tmp_path)), "--grid", GRID, "--risk-budget-usd", value)
    refused(r, words)


@pytest.mark.parametrize(
    ("text", "words"),
    [("1x", "'1x' is not a duration > 0"), ("-1h", "'-1h' is not a duration > 0"), ("0", "'0'")],
)
def test_record_bad_durations_name_the_flag(tmp_path: Path, text: str, words: str) -> None:
    out = tmp_path / "r.csv"
    r = hedgebot("record", "-c", str(config(tmp_path)), "--out", str(out), "--duration", text)
    refused(r, "argument --duration:", words)
    assert not out.exists()


def test_record_refuses_an_out_it_could_not_write_before_recording(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    r = hedgebot("record", "-c", str(cfg), "--out", str(tmp_path), "--duration", "1h")
    refused(r, "--out: must be a file, not a folder", repr(str(tmp_path)))
    a_file = tmp_path / "a-file"
    a_file.write_text("")
    r = hedgebot("record", "-c", str(cfg), "--out", str(a_file / "r.csv"), "--duration", "1h")
    refused(r, "--out's folder: cannot be made a folder (File exists)")


def test_record_refuses_parquet_without_pyarrow_before_recording(tmp_path: Path) -> None:
    """Without the lab extra a .parquet --out could not be written: refused at once, not after
    the hour of recording."""
    blocked = tmp_path / "site" / "pyarrow"
    blocked.mkdir(parents=True)
    (blocked / "__init__.py").write_text("raise ImportError('pyarrow blocked by the test')\n")
    out = tmp_path / "r.parquet"
    r = subprocess.run(
        [sys.executable, "-m", "bot", "record", "-c", str(config(tmp_path)), "--out", str(out)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(PYTHONPATH=f"{blocked.parent}:{ROOT}"),
        timeout=120,
    )
    refused(r, "--out:", "needs pyarrow", "name a .csv file")
    assert not out.exists()


@pytest.mark.parametrize(
    ("text", "words"),
    [
        (None, "file not found"),
        ("bot_id = 'x'\n[engine\n", "not valid TOML"),
        ("bot_id = 7\n", "bot_id"),
    ],
)
@pytest.mark.parametrize("command", ["backtest", "sweep", "record"])
def test_a_missing_or_invalid_config(
    tmp_path: Path, command: str, text: str | None, words: str
) -> None:
    cfg = tmp_path / "c.toml"
    if text is not None:
        cfg.write_text(text)
    extra = {"sweep": ["--grid", GRID], "record": ["--out", str(tmp_path / "r.csv")]}
    r = hedgebot(command, "--config", str(cfg), *extra.get(command, []))
    refused(r, str(cfg), words)


@pytest.mark.parametrize("command", ["backtest", "sweep"])
def test_a_data_symbol_for_an_underlying_the_config_does_not_have(
    tmp_path: Path, command: str
) -> None:
    grid = ["--grid", GRID] if command == "sweep" else []
    data = ["--data", "data/sample/btc-1m.csv", "--data-symbol", "ETH=ETH-PERPETUAL"]
    out = tmp_path / "out"
    r = hedgebot(command, "-c", str(config(tmp_path)), *grid, *data, "--out", str(out))
    refused(r, "--data-symbol: ETH must be one of the config's underlyings ['BTC']", "ETH=ETH")
    assert not (out / "results.jsonl").exists() and not (out / "report.json").exists()


@pytest.mark.parametrize("jobs", ["1", "2"])
def test_ctrl_c_during_a_backtest_says_no_report_was_written(tmp_path: Path, jobs: str) -> None:
    """Ctrl-C reaches the whole process group: with --jobs 2 the workers are interrupted too,
    and stay quiet."""
    out = tmp_path / "out"
    argv = ["-c", str(config(tmp_path)), "--days", "30", "--paths", "20", "--jobs", jobs]
    first = out / "events-21.jsonl"  # the config's sim.seed: the first path has started
    code, err = interrupt_when(
        [sys.executable, "-m", "bot", "backtest", *argv, "--events", "--out", str(out)],
        lambda: first.exists() and first.stat().st_size > 0,
    )
    assert code == 130, err
    assert b"Traceback" not in err, err
    assert f"backtest: interrupted; no report written to {out}".encode() in err
    assert not (out / "report.json").exists()


@pytest.mark.parametrize("command", ["backtest", "sweep"])
def test_a_config_with_nothing_to_hedge(tmp_path: Path, command: str) -> None:
    """Valid for the daemon (it idles), but a path has no underlying to be measured on."""
    cfg = tmp_path / "empty.toml"
    cfg.write_text('bot_id = "idle"\n')
    grid = ["--grid", "risk.max_orders_per_minute=10"] if command == "sweep" else []
    out = tmp_path / "out"
    r = hedgebot(command, "-c", str(cfg), *grid, "--days", "0.05", "--out", str(out))
    refused(r, f"hedge: a {command} needs at least one [hedge.<U>] section (got none)")
    assert not out.exists()


def test_a_results_file_that_cannot_be_read_or_written(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    sweep = ["sweep", "-c", str(cfg), "--grid", GRID, "--paths", "1", "--days", "0.05"]
    out = tmp_path / "dir"
    (out / "results.jsonl").mkdir(parents=True)
    r = hedgebot(*sweep, "--out", str(out))
    refused(r, f"--out: cannot read {out / 'results.jsonl'} (Is a directory)")
    out = tmp_path / "proc"
    out.mkdir()
    (out / "results.jsonl").symlink_to("/proc/version")  # readable, never appendable
    r = hedgebot(*sweep, "--out", str(out))
    assert r.returncode == 1 and "Traceback" not in r.stderr, r.stderr
    assert "sweep: stopped: " in r.stderr and "0 of 1 path(s) kept in" in r.stderr


def test_a_grid_of_instruments_skips_one_the_simulator_does_not_list(tmp_path: Path) -> None:
    """A value with a colon is a value, not a range; the listing is checked as for the file."""
    out = tmp_path / "out"
    grid = "hedge.BTC.instrument=FOO/USDT:USDT,BTC/USDT:USDT"
    r = hedgebot(
        "sweep", "-c", str(config(tmp_path)), "--grid", grid, "--paths", "1", "--days", "0.05",
        "--out", str(out),
    )  # fmt: skip
    assert r.returncode == 0 and "Traceback" not in r.stderr, r.stderr
    assert "skipped instrument=FOO/USDT:USDT: " in r.stderr
    assert "hedge.BTC.instrument: not listed by the simulated exchange" in r.stderr
    doc = json.loads((out / "sweep.json").read_text())
    assert [row["label"] for row in doc["rows"]] == ["instrument=BTC/USDT:USDT"]


@pytest.mark.parametrize("value", ["1e400", "NaN", "Infinity"])
def test_ctl_set_refuses_a_number_that_is_not_finite(value: str) -> None:
    """The wire would carry it as null ("no limit" for an optional limit): refused before
    anything is sent (a broker port nothing listens on is never reached)."""
    r = hedgebot(
        "ctl",
        "--config",
        "config/paper.toml",
        "--port",
        "9",
        "set",
        "risk.max_order_contracts",
        value,
    )
    refused(r, f"set: {value} is not a finite number")
