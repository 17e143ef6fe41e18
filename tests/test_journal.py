"""The SQLite journal on a real file: durability, idempotency, restart reconciliation, exports and
the `hedgebot journal` command."""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from bot.clock import wall_ms
from bot.core.orders import (
    Fill,
    FillRecord,
    OrderIntent,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    Side,
)
from bot.events import Event, EventBus
from bot.io.journal import Journal, JournalError
from bot.io.journal_cli import parse_time, register
from bot.io.journal_rows import iso_ms
from bot.io.journal_schema import SCHEMA_VERSION

SYM = "BTC/USDT:USDT"
T0 = 1_700_000_000_000


def intent(cid: str = "hb-1", side: Side = Side.SELL, amount: float = 0.5) -> OrderIntent:
    return OrderIntent(cid, "BTC", SYM, side, amount, "outside_band")


def update(
    status: OrderStatus = OrderStatus.OPEN,
    filled: float = 0.0,
    ts: int = T0 + 10,
    average: float | None = None,
    cid: str = "hb-1",
    venue_id: str | None = "v-1",
    price: float = 60_000.0,
) -> OrderUpdate:
    return OrderUpdate(cid, SYM, Side.SELL, 0.5, filled, status, ts, price, average, venue_id)


def fill(trade_id: str = "t-1", cid: str = "hb-1", amount: float = 0.2, ts: int = T0 + 20) -> Fill:
    return Fill(cid, SYM, Side.SELL, amount, 59_990.0, 0.006, "USDT", ts, trade_id)


@pytest.fixture
def db(tmp_path: Path) -> Path:
    return tmp_path / "state" / "journal.sqlite"


@pytest.fixture
def journal(db: Path) -> Iterator[Journal]:
    j = Journal(db)
    yield j
    j.close()


# --- setup -----------------------------------------------------------------------------------


def test_creates_wal_journal_with_schema_version(db: Path, journal: Journal) -> None:
    assert db.is_file()
    assert journal.journal_mode() == "wal"
    assert journal.schema_version() == SCHEMA_VERSION
    conn = sqlite3.connect(db)
    tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
    conn.close()
    assert {
        "meta",
        "decisions",
        "intents",
        "orders",
        "order_events",
        "fills",
        "state_changes",
        "events",
    } <= tables


def test_refuses_newer_schema(db: Path) -> None:
    Journal(db).close()
    conn = sqlite3.connect(db)
    conn.execute("UPDATE meta SET value = '999' WHERE key = 'schema_version'")
    conn.commit()
    conn.close()
    with pytest.raises(JournalError, match="newer"):
        Journal(db)


def test_refuses_non_journal_file(tmp_path: Path) -> None:
    bad = tmp_path / "bad.sqlite"
    bad.write_bytes(b"not a database at all" * 100)
    with pytest.raises(JournalError):
        Journal(bad)


def test_readonly_does_not_create(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="no journal"):
        Journal.open_readonly(tmp_path / "missing.sqlite")
    assert not (tmp_path / "missing.sqlite").exists()


def test_readonly_refuses_writes(db: Path) -> None:
    Journal(db).close()
    ro = Journal.open_readonly(db)
    with pytest.raises(JournalError, match="read-only"):
        ro.record_state(T0, "x")
    ro.close()


# --- round trips -----------------------------------------------------------------------------


def test_intent_order_fill_round_trip(journal: Journal) -> None:
    i = intent()
    journal.record_intent(i, T0)
    assert journal.intent("hb-1") == i
    journal.mark_sent(OrderRequest("hb-1", SYM, Side.SELL, 0.5, 60_000.0), T0 + 1)
    journal.record_order_update(update(OrderStatus.OPEN))
    journal.record_order_update(update(OrderStatus.PARTIALLY_FILLED, 0.2, T0 + 20, 59_990.0))
    assert journal.record_fill(fill(), "sim")
    order = journal.order("hb-1")
    assert order is not None
    assert (order["status"], order["filled"], order["average"], order["venue_order_id"]) == (
        "partially_filled",
        0.2,
        59_990.0,
        "v-1",
    )
    assert (order["ts_created"], order["ts_updated"], order["price"]) == (T0 + 1, T0 + 20, 60_000.0)
    assert journal.fills_for("hb-1") == [fill()]
    assert journal.filled_amount("hb-1") == pytest.approx(0.2)
    assert [e["status"] for e in journal.order_events("hb-1")] == [
        "sent",
        "open",
        "partially_filled",
    ]


def test_record_intent_twice_keeps_the_first(journal: Journal) -> None:
    journal.record_intent(intent(amount=0.5), T0)
    journal.record_order_update(update(OrderStatus.OPEN))
    journal.record_intent(intent(amount=9.0), T0 + 5)  # a retry must not reset it
    got = journal.intent("hb-1")
    assert got is not None and got.amount == 0.5
    assert journal.in_flight_intents()[0].status is OrderStatus.OPEN


def test_order_updates_are_idempotent_and_monotone(journal: Journal) -> None:
    journal.record_intent(intent(), T0)
    filled = update(OrderStatus.FILLED, 0.5, T0 + 30, 59_995.0)
    journal.record_order_update(update(OrderStatus.PARTIALLY_FILLED, 0.2, T0 + 20, 59_990.0))
    journal.record_order_update(filled)
    journal.record_order_update(filled)  # duplicate from REST reconciliation
    journal.record_order_update(update(OrderStatus.OPEN, 0.0, T0 + 10))  # late websocket message
    order = journal.order("hb-1")
    assert order is not None
    assert (order["status"], order["filled"], order["average"]) == ("filled", 0.5, 59_995.0)
    assert [e["status"] for e in journal.order_events("hb-1")] == ["partially_filled", "filled"]
    assert journal.in_flight_intents() == []


def test_update_without_intent_is_not_stored(journal: Journal) -> None:
    journal.record_order_update(update(cid="stranger"))
    assert journal.order("stranger") is None


def test_fill_dedupe_across_reopen(db: Path) -> None:
    j = Journal(db)
    j.record_intent(intent(), T0)
    assert j.record_fill(fill("t-1"), "sim")
    assert not j.record_fill(fill("t-1"), "sim")
    j.close()
    j = Journal(db)
    assert not j.record_fill(fill("t-1"), "sim")  # the websocket replays it after restart
    assert j.record_fill(fill("t-2", amount=0.3), "sim")
    # The same trade id on another symbol is another trade.
    other = Fill("hb-1", "ETH/USDT:USDT", Side.SELL, 1.0, 3000.0, 0.0, "USDT", T0, "t-1")
    assert j.record_fill(other, "sim")
    assert j.filled_amount("hb-1") == pytest.approx(1.5)
    assert len(j.fills_for("hb-1")) == 3
    j.close()


def test_a_trade_id_reused_for_another_order_is_a_new_fill(db: Path) -> None:
    """A venue that reuses trade ids (a testnet after a reset, a paper account started afresh):
    the same id for another order's fill is a new trade, kept under `<id>@<client id>`; its
    replay is known, and a fill naming no order is taken for the one seen."""
    j = Journal(db)
    assert j.record_fill(fill("t-1"), "sim") is FillRecord.NEW
    assert j.record_fill(fill("t-1", cid="hb-2"), "sim") is FillRecord.REUSED
    j.close()
    j = Journal(db)
    assert j.record_fill(fill("t-1", cid="hb-2"), "sim") is FillRecord.KNOWN
    assert j.record_fill(fill("t-1"), "sim") is FillRecord.KNOWN
    assert j.record_fill(fill("t-1", cid=""), "sim") is FillRecord.KNOWN
    assert [f.trade_id for f in j.fills_for("hb-2")] == ["t-1@hb-2"]
    j.close()


def test_same_trade_id_on_two_accounts_is_two_fills(db: Path) -> None:
    """Trade ids are unique per exchange: two accounts trading one symbol (routing) may both
    report "t-1", and each is its own fill."""
    j = Journal(db)
    assert j.record_fill(fill("t-1"), "cheap")
    assert j.record_fill(fill("t-1"), "dear")
    assert not j.record_fill(fill("t-1"), "dear")
    j.close()


def test_v2_journal_migrates_and_its_fills_still_block_replays(db: Path) -> None:
    from bot.io.journal_schema import MIGRATIONS, SCHEMA_V1

    db.parent.mkdir(parents=True)
    conn = sqlite3.connect(db)
    conn.executescript(
        SCHEMA_V1
        + MIGRATIONS[1]
        + "INSERT INTO meta (key, value) VALUES ('schema_version', '2');"
        + "INSERT INTO fills (trade_id, client_id, symbol, side, amount, price, fee,"
        + f" fee_currency, ts) VALUES ('t-1', 'hb-1', '{SYM}', 'sell', 0.5, 60000, 0, 'USDT', 1);"
    )
    conn.close()
    j = Journal(db)
    assert j.schema_version() == SCHEMA_VERSION == 3
    assert [f.trade_id for f in j.fills_for("hb-1")] == ["t-1"]
    assert not j.record_fill(fill("t-1"), "sim")  # booked before the upgrade, on some account
    assert j.record_fill(fill("t-2"), "sim")
    j.close()


def test_in_flight_after_simulated_crash(db: Path) -> None:
    j = Journal(db)
    j.record_intent(intent("hb-created"), T0)  # journaled, crashed before the send
    j.record_intent(intent("hb-sent"), T0 + 1)
    j.mark_sent(OrderRequest("hb-sent", SYM, Side.SELL, 0.5, 60_000.0), T0 + 2)
    j.record_intent(intent("hb-done"), T0 + 3)
    j.record_order_update(update(OrderStatus.FILLED, 0.5, T0 + 4, 60_000.0, cid="hb-done"))
    j.record_intent(intent("hb-partial"), T0 + 5)
    j.record_order_update(update(OrderStatus.PARTIALLY_FILLED, 0.1, T0 + 6, cid="hb-partial"))
    # No close(): the process dies here. sqlite3 has nothing buffered (every write committed).
    del j
    j = Journal(db)
    flights = {f.intent.client_id: f for f in j.in_flight_intents()}
    assert set(flights) == {"hb-created", "hb-sent", "hb-partial"}
    assert flights["hb-created"].status is OrderStatus.CREATED
    assert flights["hb-sent"].status is OrderStatus.SENT and flights["hb-sent"].price == 60_000.0
    assert flights["hb-partial"].filled == pytest.approx(0.1)
    assert flights["hb-partial"].venue_order_id == "v-1"
    assert flights["hb-sent"].intent == intent("hb-sent")
    j.close()


_CHILD = textwrap.dedent(
    """
    import sys, time
    from bot.core.orders import OrderIntent, OrderRequest, Side
    from bot.io.journal import Journal
    j = Journal(sys.argv[1])
    j.record_intent(OrderIntent("hb-kill", "BTC", "BTC/USDT:USDT", Side.BUY, 1.5, "r"), 1)
    j.mark_sent(OrderRequest("hb-kill", "BTC/USDT:USDT", Side.BUY, 1.5, 60000.0), 2)
    print("written", flush=True)
    time.sleep(60)
    """
)


@pytest.mark.slow
def test_sigkill_right_after_write_loses_nothing(db: Path) -> None:
    child = subprocess.Popen(
        [sys.executable, "-c", _CHILD, str(db)],
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
        text=True,
        cwd=Path(__file__).resolve().parents[1],
    )
    try:
        assert child.stdout is not None
        # The journal logs to stdout too; wait for the child's own line.
        lines = iter(child.stdout.readline, "")
        assert any(line.strip() == "written" for line in lines)
        os.kill(child.pid, signal.SIGKILL)
        assert child.wait(timeout=10) == -signal.SIGKILL
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    j = Journal(db)
    flights = j.in_flight_intents()
    assert [(f.intent.client_id, f.status, f.intent.amount) for f in flights] == [
        ("hb-kill", OrderStatus.SENT, 1.5)
    ]
    j.close()


def test_state_decisions_and_events(journal: Journal) -> None:
    journal.record_state(T0, "trading_state", {"from": "active", "to": "halted"})
    journal.record_decision(
        T0 + 1,
        "BTC",
        action="trade",
        reason="outside_band",
        delta=1.2,
        target=0.0,
        band=0.5,
        data={"gap_coin": -1.2},
    )
    bus = EventBus(journal)
    bus.emit(
        Event(
            "reject",
            "risk.rejected",
            T0 + 2,
            {"rule": "max_order_notional", "limit_usd": 1e6, "bad": float("nan")},
        )
    )
    assert journal.state_changes_between()[0]["name"] == "trading_state"
    d = journal.decisions_between()[0]
    assert (d["underlying"], d["action"], d["delta"], json.loads(d["json"])) == (
        "BTC",
        "trade",
        1.2,
        {"gap_coin": -1.2},
    )
    e = journal.events_between()[0]
    assert (e["kind"], e["name"]) == ("reject", "risk.rejected")
    assert json.loads(e["json"]) == {"rule": "max_order_notional", "limit_usd": 1e6, "bad": None}


def test_record_hedge_decision_takes_policy_objects(journal: Journal) -> None:
    class Decision:
        underlying, ts_ms, trade, reason = "ETH", T0, False, "inside_band"
        delta, target, band = 0.1, 0.0, 0.5

        def as_dict(self) -> dict[str, object]:
            return {"unit": "coin"}

    journal.record_hedge_decision(Decision())
    row = journal.decisions_between()[0]
    assert (row["action"], row["reason"], json.loads(row["json"])) == (
        "hold",
        "inside_band",
        {"unit": "coin"},
    )


def test_record_hedge_decision_keeps_the_band_the_policy_used(journal: Journal) -> None:
    from bot.core.book import Exposure
    from bot.core.market import UnderlyingMarket
    from bot.core.policy import Aim, BandPolicy, decide

    pol = BandPolicy(band=0.4, aim=Aim(target=0.5), lower=0.2, upper=0.4, to="edge")
    exp = Exposure("BTC", T0, 50_000.0, 0.1, 5_000.0, 0.0, 0.0, 0.0, 0.0)
    d = decide(pol, exp, UnderlyingMarket("BTC", T0, 50_000.0, 0.6), T0, order_in_flight=False)
    journal.record_hedge_decision(d)
    row = journal.decisions_between()[0]
    # 0.4 below the centre 0.5, lower side 0.2: buy 0.2 to the lower edge 0.3
    assert (row["action"], row["reason"], row["target"], row["band"]) == (
        "trade",
        "outside_band",
        0.5,
        0.4,
    )
    data = json.loads(row["json"])
    assert (data["band_lower"], data["band_upper"], data["to"], data["policy"]) == (
        0.2,
        0.4,
        "edge",
        "band",
    )
    assert data["gap_coin"] == pytest.approx(0.2)


def test_emit_never_raises(journal: Journal) -> None:
    journal.close()  # closed connection: every write fails
    journal.emit(Event("alert", "x", T0))  # logged, not raised
    journal.close()  # and closing twice is harmless


# --- exports by time range -------------------------------------------------------------------


def _populate(j: Journal) -> None:
    for k in range(5):
        cid = f"hb-{k}"
        ts = T0 + k * 1000
        j.record_intent(intent(cid), ts)
        j.mark_sent(OrderRequest(cid, SYM, Side.SELL, 0.5, 60_000.0 + k), ts)
        j.record_order_update(
            update(OrderStatus.FILLED, 0.5, ts + 100, 60_000.0 + k, cid=cid, price=60_000.0 + k)
        )
        j.record_fill(fill(f"t-{k}", cid, 0.5, ts + 100), "sim")
        j.record_decision(
            ts, "BTC", action="trade", reason="outside_band", delta=float(k), target=0.0, band=0.5
        )
        j.emit(Event("order", "hedge.sent", ts, {"client_id": cid}))


def test_export_csv_and_json_by_time_range(journal: Journal) -> None:
    _populate(journal)
    out = io.StringIO()
    # The rows were written now with clock times in 2023: ranges of the daemon's clock.
    n = journal.export("orders", "csv", out, T0 + 1000, T0 + 3000, axis="clock")
    assert n == 2
    rows = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [r["client_id"] for r in rows] == ["hb-1", "hb-2"]
    assert rows[0]["clock_time"] == "2023-11-14T22:13:21.000+00:00"
    assert rows[0]["status"] == "filled" and float(rows[0]["price"]) == 60_001.0
    out = io.StringIO()
    assert journal.export("fills", "json", out, since_ms=T0 + 3000, axis="clock") == 2
    fills = json.loads(out.getvalue())
    assert [f["trade_id"] for f in fills] == ["t-3", "t-4"]
    assert fills[0]["amount"] == 0.5 and fills[0]["ts"] == T0 + 3100
    out = io.StringIO()
    assert journal.export("decisions", "json", out, until_ms=T0 + 1, axis="clock") == 1
    assert json.loads(out.getvalue())[0]["json"] == {}


# --- the CLI ---------------------------------------------------------------------------------


def _cli(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="hedgebot")
    sub = parser.add_subparsers(dest="command", required=True)
    register(sub)
    args = parser.parse_args(argv)
    code: int = args.func(args)
    return code


def test_cli_exports_csv_and_json_files(db: Path, tmp_path: Path) -> None:
    j = Journal(db)
    _populate(j)
    j.close()
    out_csv = tmp_path / "out" / "orders.csv"
    since = "2023-11-14T22:13:21Z"  # T0 + 1000
    code = _cli(
        [
            "journal",
            "--db",
            str(db),
            "orders",
            "--clock-time",
            "--since",
            since,
            "--until",
            str(T0 + 3000),
            "--format",
            "csv",
            "--output",
            str(out_csv),
        ]
    )
    assert code == 0
    rows = list(csv.DictReader(out_csv.open()))
    assert [r["client_id"] for r in rows] == ["hb-1", "hb-2"]
    assert {r["status"] for r in rows} == {"filled"}
    out_json = tmp_path / "fills.json"
    assert _cli(["journal", "--db", str(db), "fills", "-f", "json", "-o", str(out_json)]) == 0
    fills = json.loads(out_json.read_text())
    assert [f["trade_id"] for f in fills] == [f"t-{k}" for k in range(5)]
    assert all(f["client_id"] == f"hb-{k}" for k, f in enumerate(fills))
    assert {f["account"] for f in fills} == {"sim"}  # whose fill it is (routing: several)
    events_json = tmp_path / "events.json"
    assert (
        _cli(
            [
                "journal",
                "--db",
                str(db),
                "events",
                "-f",
                "json",
                "-o",
                str(events_json),
                "--clock-time",
                "--since",
                str(T0 + 4000),
            ]
        )
        == 0
    )
    assert json.loads(events_json.read_text())[0]["json"] == {"client_id": "hb-4"}


def test_cli_table_output(
    db: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "200")  # a wide terminal: the clock_time column fits too
    j = Journal(db)
    _populate(j)
    j.close()
    assert _cli(["journal", "--db", str(db), "decisions"]) == 0
    text = capsys.readouterr().out
    assert "decisions (5)" in text and "outside_band" in text
    out = tmp_path / "fills.txt"
    assert _cli(["journal", "--db", str(db), "fills", "-o", str(out)]) == 0
    assert "t-4" in out.read_text() and "\x1b[" not in out.read_text()


def test_cli_reads_journal_path_from_config(tmp_path: Path) -> None:
    db = tmp_path / "j.sqlite"
    j = Journal(db)
    _populate(j)
    j.close()
    cfg = tmp_path / "hedgebot.toml"
    cfg.write_text(f'[journal]\npath = "{db}"\n')
    out = tmp_path / "d.json"
    assert _cli(["journal", "--config", str(cfg), "decisions", "-f", "json", "-o", str(out)]) == 0
    assert len(json.loads(out.read_text())) == 5


def test_cli_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _cli(["journal", "--db", str(tmp_path / "nope.sqlite"), "orders"]) == 2
    assert "no journal at" in capsys.readouterr().err
    db = tmp_path / "j.sqlite"
    Journal(db).close()
    assert _cli(["journal", "--db", str(db), "orders", "--since", "yesterday"]) == 2
    assert "not an ISO 8601 time" in capsys.readouterr().err
    assert _cli(["journal", "--db", str(db), "orders", "--since", "2", "--until", "1"]) == 2
    bad_cfg = tmp_path / "bad.toml"
    bad_cfg.write_text("[journal]\npaht = 'x'\n")
    assert _cli(["journal", "--config", str(bad_cfg), "orders"]) == 2
    assert "journal.paht" in capsys.readouterr().err
    with pytest.raises(SystemExit) as e:  # argparse's own usage errors are exit 2 too
        _cli(["journal", "--db", "a", "--config", "b", "orders"])
    assert e.value.code == 2


@pytest.mark.parametrize(
    ("text", "ms"),
    [
        ("1700000000000", 1_700_000_000_000),
        ("2023-11-14T22:13:20Z", 1_700_000_000_000),
        ("2023-11-14T22:13:20", 1_700_000_000_000),
        ("2023-11-14T23:13:20+01:00", 1_700_000_000_000),
        (None, None),
    ],
)
def test_parse_time(text: str | None, ms: int | None) -> None:
    assert parse_time(text) == ms


def test_ranges_and_time_column_follow_the_wall_clock(
    journal: Journal, capsys: pytest.CaptureFixture[str], db: Path
) -> None:
    """A simulated run's clock is hours ahead of the wall clock: `--since now` must not return
    its rows as if they were in the future, and the table shows both times."""
    ahead = wall_ms() + 6 * 3_600_000
    journal.emit(Event("state", "engine.started", ahead, {}))
    now = wall_ms()
    assert len(journal.events_between(since_ms=now - 60_000)) == 1  # written a moment ago
    assert journal.events_between(since_ms=now + 60_000) == []
    assert len(journal.events_between(since_ms=now + 60_000, axis="clock")) == 1
    journal.close()
    assert _cli(["journal", "--db", str(db), "events"]) == 0
    out = capsys.readouterr().out
    assert "clock_time" in out and iso_ms(ahead)[:16] in out


def test_decisions_the_hedger_reports_are_journaled(journal: Journal) -> None:
    data = {
        "underlying": "BTC",
        "trade": True,
        "reason": "outside_band",
        "delta": 0.8,
        "target": 0.0,
        "band": 0.5,
        "gap_coin": -0.8,
    }
    journal.emit(Event("decision", "hedge.decision", T0, data))
    journal.emit(Event("decision", "hedge.skipped", T0, {"underlying": "BTC"}))
    rows = journal.decisions_between(axis="clock")
    assert len(rows) == 1
    row = rows[0]
    assert (row["underlying"], row["action"], row["reason"]) == ("BTC", "trade", "outside_band")
    assert (row["delta"], row["target"], row["band"]) == (0.8, 0.0, 0.5)
    assert json.loads(row["json"])["gap_coin"] == -0.8


def test_export_into_a_closed_pipe_stops_quietly(db: Path, journal: Journal) -> None:
    """`hedgebot journal ... | head`: the reader goes away after a line; the export stops with
    the shell's SIGPIPE status and no traceback on stderr."""
    bus = EventBus(journal)
    for i in range(3000):
        bus.emit(Event("state", "test.row", T0 + i, {"i": i, "pad": "x" * 40}))
    journal.close()
    child = subprocess.Popen(
        [sys.executable, "-m", "bot", "journal", "--db", str(db), "--format", "csv", "events"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    assert child.stdout is not None and child.stderr is not None
    assert child.stdout.readline().startswith(b"time,")
    child.stdout.close()
    err = child.stderr.read()
    assert child.wait(timeout=30) == 141
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err
