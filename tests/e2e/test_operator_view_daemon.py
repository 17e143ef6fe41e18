"""What the operator sees, through `python -m bot run` on the simulated exchange: the book at
start, one line per fill, the periodic status with costs and P&L, rounded console lines."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from tests.e2e.test_paper_daemon import CONFIG
from tests.helpers import ROOT, clean_env, named, run_bot

STATUS = "[engine]\nsummary_interval_s = 20\n"


def _config(tmp_path: Path) -> Path:
    cfg = tmp_path / "view.toml"
    text = CONFIG.format(
        seed=11, journal=tmp_path / "journal.sqlite", policy='kind = "band", band = 0.4'
    )
    cfg.write_text(text.replace("[engine]\n", STATUS, 1))
    return cfg


def test_book_at_start_one_fill_line_and_status_pnl(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    cfg.write_text(cfg.read_text() + '[log]\nlevel = "debug"\n')
    code, events, stderr = run_bot(
        ["run", "--config", str(cfg), "--duration", "300", "--log-format", "json"], timeout=180
    )
    assert code == 0, stderr

    # the book being hedged, once, at the first exposure
    [book] = named(events, "book.loaded")
    assert book["underlying"] == "BTC" and book["price"] > 0
    held = {line["symbol"]: line["qty"] for line in book["lines"]}
    assert sorted(held.values()) == [-30.0, -30.0, 4.0], held
    for greek in ("delta_coin", "delta_usd", "gamma_coin", "vega_usd", "theta_usd"):
        assert isinstance(book[greek], float), greek
    assert book["vega_usd"] < 0  # short options
    first_decision = events.index(named(events, "hedge.decision")[0])
    assert events.index(book) < first_decision

    # one info line per fill: the simulated exchange's own line is debug
    fills = named(events, "order.fill")
    assert fills
    assert all(e["level"] == "debug" for e in named(events, "sim.fill"))

    # the periodic status carries costs and the hedged P&L since start, full precision (JSON)
    statuses = named(events, "daemon.status")
    assert len(statuses) >= 3
    last = statuses[-1]
    assert last["fees_usd"] > 0 and isinstance(last["slippage_usd"], float)
    assert isinstance(last["value_usd"], float) and isinstance(last["pnl_usd"], float)
    # the start value is taken at the first valuation, seconds after start
    starts = {e["start_value_usd"] for e in statuses}
    assert len(starts) == 1 and None not in starts
    assert last["pnl_usd"] == last["value_usd"] - last["start_value_usd"]
    # short gamma, hedged: the P&L moves but stays a fraction of the book's notional
    assert abs(last["pnl_usd"]) < 60 * 60_000 * 0.2


def test_console_lines_are_rounded(tmp_path: Path) -> None:
    cfg = _config(tmp_path)
    args = ["run", "--config", str(cfg), "--duration", "120", "--log-format", "console"]
    r = subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=180,
    )
    assert r.returncode == 0, r.stderr
    out = r.stdout
    [book] = [line for line in out.splitlines() if "book.loaded" in line]
    # lines held as one readable list; greeks in USD to the cent, coin to 1e-6
    assert re.search(r"lines=.*sim:BTC/USDT \+4\.0", book), book
    assert re.search(r"vega_usd=-?\d+\.\d{1,2}\b", book), book
    assert re.search(r"delta_coin=-?\d+\.\d{1,6}\b", book), book
    status = [line for line in out.splitlines() if "daemon.status" in line]
    assert status and re.search(r"fees_usd=\d+\.\d{1,2}\b", status[-1]), status[-1]
    # no float printed with more than 8 decimals anywhere a person reads
    assert not re.search(r"\d\.\d{9,}", out), re.search(r".{60}\d\.\d{9,}.{20}", out)
