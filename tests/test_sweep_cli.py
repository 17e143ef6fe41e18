"""`hedgebot sweep` through the real entry point: the same table whatever runs it (one process,
several, a Dask cluster), resume after a kill, bad grids refused, the picture and the
recommendation."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import ROOT, clean_env, interrupt_when

pytestmark = pytest.mark.slow

CONFIG = """
bot_id = "sweep"
[engine]
stale_after_s = 120
[risk]
max_order_contracts = 100
max_orders_per_minute = 60
[sim]
seed = 21
[sim.underlyings.BTC]
price = 60_000.0
vol = 0.8
jump_intensity = 20.0
jump_std = 0.01
[accounts.sim]
exchange = "sim"
[[positions]]
underlying = "BTC"
kind = "option"
option_type = "call"
strike = 60_000
expiry_days = 60
qty = -20
[hedge.BTC]
account = "sim"
instrument = "BTC/USDT:USDT"
[hedge.BTC.policy]
kind = "band"
band = 0.5
"""

PNG = b"\x89PNG\r\n\x1a\n"


def config(tmp: Path) -> Path:
    path = tmp / "sweep.toml"
    path.write_text(CONFIG)
    return path


def sweep_args(cfg: Path, out: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bot",
        "sweep",
        "--config",
        str(cfg),
        "--grid",
        "hedge.BTC.policy.band=0.1,1.5",
        "--paths",
        "2",
        "--days",
        "0.1",
        "--out",
        str(out),
        *extra,
    ]


def sweep(cfg: Path, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        sweep_args(cfg, out, *extra),
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=300,
    )


def assert_png(path: Path) -> None:
    import matplotlib.image

    data = path.read_bytes()
    assert data[:8] == PNG, path
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 100 and height > 100
    assert matplotlib.image.imread(path).shape[:2] == (height, width)  # it decodes


def test_same_arguments_same_table_on_one_or_more_processes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    a = sweep(cfg, tmp_path / "a", "--jobs", "2", "--risk-budget-usd", "1e9")
    b = sweep(cfg, tmp_path / "b", "--jobs", "1", "--risk-budget-usd", "1e9")
    assert a.returncode == 0, a.stderr
    assert b.returncode == 0, b.stderr
    ja, jb = (
        (tmp_path / "a" / "sweep.json").read_bytes(),
        (tmp_path / "b" / "sweep.json").read_bytes(),
    )
    assert ja == jb
    assert (tmp_path / "a" / "sweep.csv").read_bytes() == (
        tmp_path / "b" / "sweep.csv"
    ).read_bytes()
    doc = json.loads(ja)
    rows = doc["rows"]
    assert [r["label"] for r in rows] == ["band=0.1", "band=1.5"] and doc["skipped"] == []
    tight, loose = rows
    # A tight band trades more and costs more; it holds the P&L closer.
    assert tight["orders_mean"] > loose["orders_mean"]
    assert tight["cost_mean_usd"] > loose["cost_mean_usd"]
    assert tight["pnl_std_usd"] < loose["pnl_std_usd"]
    assert tight["frontier"] and loose["frontier"]
    # An unlimited budget buys the cheapest; the lines to paste are printed.
    assert doc["recommended"] == {"hedge.BTC.policy.band": 1.5}
    assert "[hedge.BTC.policy]\n  band = 1.5" in a.stdout
    assert_png(tmp_path / "a" / "sweep.png")
    csv_lines = (tmp_path / "a" / "sweep.csv").read_text().splitlines()
    assert csv_lines[0].startswith("hedge.BTC.policy.band,label,") and len(csv_lines) == 3
    import pyarrow.parquet as pq

    table = pq.read_table(tmp_path / "a" / "sweep.parquet").to_pylist()
    assert [(r["hedge.BTC.policy.band"], r["pnl_std_usd"]) for r in table] == [
        (0.1, tight["pnl_std_usd"]),
        (1.5, loose["pnl_std_usd"]),
    ]
    # Within a budget only the tight band fits; below it nothing does (exit 1, said why).
    budget = (tight["pnl_std_usd"] + loose["pnl_std_usd"]) / 2
    c = sweep(cfg, tmp_path / "a", "--risk-budget-usd", str(budget))
    assert c.returncode == 0 and "band = 0.1" in c.stdout
    assert "4 of 4 path(s) already done" in c.stdout  # nothing re-run
    d = sweep(cfg, tmp_path / "a", "--risk-budget-usd", str(tight["pnl_std_usd"] / 2))
    assert d.returncode == 1 and "no setting has a hedged P&L std within" in d.stdout


def test_the_same_work_on_a_dask_cluster_gives_the_same_table(tmp_path: Path) -> None:
    from distributed import LocalCluster

    cfg = config(tmp_path)
    local = sweep(cfg, tmp_path / "local", "--jobs", "2")
    assert local.returncode == 0, local.stderr
    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None
    ) as cluster:
        r = sweep(cfg, tmp_path / "dask", "--scheduler", cluster.scheduler_address)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "dask" / "sweep.json").read_bytes() == (
        tmp_path / "local" / "sweep.json"
    ).read_bytes()


def test_an_interrupted_sweep_keeps_its_work_and_resumes(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    out = tmp_path / "out"
    results = out / "results.jsonl"
    # 40 runs of a fraction of a second each: the Ctrl-C after the first lands mid-sweep
    many = ("--jobs", "1", "--paths", "20")
    proc = subprocess.Popen(
        sweep_args(cfg, out, *many),
        cwd=ROOT,
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while not (results.exists() and results.read_text().count("\n") >= 1):
            assert proc.poll() is None, "the sweep ended before it could be interrupted"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)  # Ctrl-C: stops, keeps what finished, says so
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)
    assert proc.returncode == 130, err
    assert b"run the same command to resume" in err
    kept = results.read_text().count("\n")
    assert 1 <= kept < 40
    with results.open("a") as f:
        f.write('{"run": "torn')  # a line cut by a harder stop (kill -9) is ignored
    r = sweep(cfg, out, *many)
    assert r.returncode == 0, r.stderr
    assert f"{kept} of 40 path(s) already done" in r.stdout
    full = sweep(cfg, tmp_path / "whole", *many)
    assert full.returncode == 0, full.stderr
    assert (out / "sweep.json").read_bytes() == (tmp_path / "whole" / "sweep.json").read_bytes()
    # Other arguments are another run: the same folder's lines are not mixed in.
    other = sweep(cfg, out, *many, "--days", "0.05")
    assert other.returncode == 0 and "already done" not in other.stdout


def test_ctrl_c_on_several_processes_keeps_the_work_without_a_traceback(tmp_path: Path) -> None:
    """Ctrl-C reaches the whole process group: the workers are interrupted too."""
    cfg = config(tmp_path)
    out = tmp_path / "out"
    argv = [*sweep_args(cfg, out, "--jobs", "2", "--days", "3"), "--paths", "3"]
    code, err = interrupt_when(argv, (out / "results.jsonl").exists)
    assert code == 130, err
    assert b"Traceback" not in err and b"run the same command to resume" in err
    kept = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(kept) < 6 and f"{len(kept)} of 6 path(s) kept".encode() in err


def test_bad_grids_and_combinations_are_refused_with_the_rule(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    r = subprocess.run(
        [*sweep_args(cfg, tmp_path / "x")[:6], "--grid", "hedge.BTC.policy.band=0.1:1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=120,
    )
    assert r.returncode == 2 and "a range is a:b:n with three parts" in r.stderr
    r = sweep(cfg, tmp_path / "x", "--grid", "hedge.BTC.policy.band_lower=-1")
    assert r.returncode == 2, r.stdout
    assert "hedge.BTC.policy.band_lower" in r.stderr and "greater than 0" in r.stderr
    assert "no combination of the grid validates" in r.stderr
    r = sweep(cfg, tmp_path / "x", "--scheduler", "localhost:8786")
    assert r.returncode == 2 and "--scheduler: must be an address like tcp://HOST:PORT" in r.stderr
    # Only some combinations validate: those run, the rest are reported as skipped.
    r = sweep(cfg, tmp_path / "y", "--grid", "hedge.BTC.policy.to=target,sideways", "--paths", "1")
    assert r.returncode == 0, r.stderr
    assert "skipped band=0.1 to=sideways" in r.stderr
    doc = json.loads((tmp_path / "y" / "sweep.json").read_text())
    assert [s["label"] for s in doc["skipped"]] == ["band=0.1 to=sideways", "band=1.5 to=sideways"]
    assert "hedge.BTC.policy.to" in doc["skipped"][0]["reason"]
    assert [r["label"] for r in doc["rows"]] == ["band=0.1 to=target", "band=1.5 to=target"]


def test_a_sweep_on_a_model_or_on_windows_of_a_recorded_file(tmp_path: Path) -> None:
    """--market and --data as backtest takes them; over a file, path i replays the i-th
    consecutive --days window (the sample: two days of minutes)."""
    cfg = config(tmp_path)
    r = sweep(cfg, tmp_path / "gbm", "--market", "gbm", "--paths", "1")
    assert r.returncode == 0, r.stderr
    assert json.loads((tmp_path / "gbm" / "sweep.json").read_text())["market"] == "model:gbm"
    out = tmp_path / "data"
    r = sweep(cfg, out, "--data", "data/sample/btc-1m.csv", "--jobs", "2")
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "sweep.json").read_text())
    assert doc["market"].startswith("data:btc-1m.csv:") and doc["tick_ms"] == 0
    start = 1_767_225_600_000  # the sample's first minute
    window = int(0.1 * 86_400_000)
    assert doc["windows_ms"] == [[start, start + window], [start + window, start + 2 * window]]
    lines = [json.loads(x) for x in (out / "results.jsonl").read_text().splitlines()]
    assert len(lines) == 4 and all(x["run"] == lines[0]["run"] for x in lines)
    by_seed = {x["seed"]: x["pnl_usd"] for x in lines if x["key"] == lines[0]["key"]}
    assert len(set(by_seed.values())) == 2  # two windows, two markets
    # Resampled on a grid, a run of its own (not mixed with the file-timestamp one).
    r = sweep(cfg, out, "--data", "data/sample/btc-1m.csv", "--tick-ms", "120000")
    assert r.returncode == 0 and "already done" not in r.stdout
    # The shared argument check, and a file too short for the windows asked.
    r = sweep(cfg, out, "--data", "data/sample/btc-1m.csv", "--market", "gbm")
    assert r.returncode == 2 and "--market and --data: pick one" in r.stderr
    r = sweep(cfg, out, "--data", "data/sample/btc-1m.csv", "--paths", "30")
    assert r.returncode == 2
    assert "room for 19 window(s) of --days 0.1, not --paths 30" in r.stderr
