"""SQLite journal: every decision, intent, order update, fill and state change, on disk before the
caller moves on, so a restart knows what was in flight and never sends an intent twice.

Durability. WAL mode; every write is its own committed transaction before the method returns.
Intents, orders, fills and state changes commit with `synchronous=FULL` (the WAL is fsynced at
each commit) because losing one of them to a power cut could mean a double send or a fill booked
twice after restart. Decisions and events are telemetry and commit with `synchronous=NORMAL`
(no fsync per commit): in WAL mode that still survives a crash or SIGKILL of the process, only an
OS crash or power loss can drop the last ones, and the next FULL commit fsyncs them too.

Threading. One connection, owned by the journal, used from the one asyncio thread (sqlite3's
same-thread check stays on). Writes are small and local; an fsync blocks the loop for about a
millisecond, cheap next to a venue round trip.
"""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sqlite3
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

import structlog

from bot.clock import wall_ms
from bot.core.orders import Fill, OrderIntent, OrderRequest, OrderStatus, OrderUpdate, Side
from bot.events import Event

SCHEMA_VERSION = 3

Row = dict[str, Any]
Table = Literal["orders", "fills", "decisions", "events"]
Axis = Literal["wall", "clock"]  # which time a range applies to
TABLES: tuple[Table, ...] = ("orders", "fills", "decisions", "events")
ExportFormat = Literal["csv", "json"]

_log = structlog.get_logger("hedgebot.journal")

_SCHEMA_V1 = """
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
CREATE TABLE decisions (
    id         INTEGER PRIMARY KEY AUTOINCREMENT,
    ts         INTEGER NOT NULL,
    underlying TEXT    NOT NULL,
    delta      REAL,
    target     REAL,
    band       REAL,
    action     TEXT    NOT NULL,
    reason     TEXT    NOT NULL,
    json       TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX decisions_ts ON decisions (ts);
CREATE TABLE intents (
    client_id   TEXT PRIMARY KEY,
    ts          INTEGER NOT NULL,
    underlying  TEXT    NOT NULL,
    symbol      TEXT    NOT NULL,
    side        TEXT    NOT NULL CHECK (side IN ('buy', 'sell')),
    amount      REAL    NOT NULL,
    reason      TEXT    NOT NULL,
    reduce_only INTEGER NOT NULL DEFAULT 0,
    state       TEXT    NOT NULL
);
CREATE INDEX intents_state ON intents (state);
CREATE TABLE orders (
    client_id      TEXT PRIMARY KEY REFERENCES intents (client_id),
    venue_order_id TEXT,
    symbol         TEXT    NOT NULL,
    side           TEXT    NOT NULL,
    amount         REAL    NOT NULL,
    status         TEXT    NOT NULL,
    filled         REAL    NOT NULL DEFAULT 0,
    average        REAL,
    price          REAL,
    reason         TEXT,
    ts_created     INTEGER NOT NULL,
    ts_updated     INTEGER NOT NULL,
    json           TEXT    NOT NULL DEFAULT '{}'
);
CREATE INDEX orders_ts ON orders (ts_created);
CREATE TABLE order_events (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    client_id TEXT    NOT NULL REFERENCES intents (client_id),
    ts        INTEGER NOT NULL,
    status    TEXT    NOT NULL,
    filled    REAL    NOT NULL,
    json      TEXT    NOT NULL
);
CREATE INDEX order_events_client ON order_events (client_id);
CREATE TABLE fills (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    trade_id     TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    symbol       TEXT    NOT NULL,
    side         TEXT    NOT NULL,
    amount       REAL    NOT NULL,
    price        REAL    NOT NULL,
    fee          REAL    NOT NULL,
    fee_currency TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    UNIQUE (symbol, trade_id)
);
CREATE INDEX fills_client ON fills (client_id);
CREATE INDEX fills_ts ON fills (ts);
CREATE TABLE state_changes (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    ts   INTEGER NOT NULL,
    name TEXT    NOT NULL,
    json TEXT    NOT NULL
);
CREATE INDEX state_changes_ts ON state_changes (ts);
CREATE TABLE events (
    id   INTEGER PRIMARY KEY AUTOINCREMENT,
    ts   INTEGER NOT NULL,
    kind TEXT    NOT NULL,
    name TEXT    NOT NULL,
    json TEXT    NOT NULL
);
CREATE INDEX events_ts ON events (ts);
"""

# Migrations from version N to N+1, appended as the schema grows; each runs in one transaction.
_MIGRATIONS: dict[int, str] = {
    # v2: the wall-clock time of each row beside its clock time (`ts`), which in a simulated
    # run is simulated time; the journal's time filters and `time` column use the wall clock.
    1: """
ALTER TABLE decisions ADD COLUMN wall INTEGER;
ALTER TABLE orders ADD COLUMN wall_created INTEGER;
ALTER TABLE fills ADD COLUMN wall INTEGER;
ALTER TABLE state_changes ADD COLUMN wall INTEGER;
ALTER TABLE events ADD COLUMN wall INTEGER;
CREATE INDEX decisions_wall ON decisions (wall);
CREATE INDEX orders_wall ON orders (wall_created);
CREATE INDEX fills_wall ON fills (wall);
CREATE INDEX events_wall ON events (wall);
""",
    # v3: a fill is one account's: trade ids are unique per exchange, not across accounts, so two
    # accounts trading the same symbol (routing) may both report "t-1". Rows from before keep
    # account '' and still block a replay of the same trade id on any account (record_fill).
    2: """
CREATE TABLE fills_v3 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    account      TEXT    NOT NULL DEFAULT '',
    trade_id     TEXT    NOT NULL,
    client_id    TEXT    NOT NULL,
    symbol       TEXT    NOT NULL,
    side         TEXT    NOT NULL,
    amount       REAL    NOT NULL,
    price        REAL    NOT NULL,
    fee          REAL    NOT NULL,
    fee_currency TEXT    NOT NULL,
    ts           INTEGER NOT NULL,
    wall         INTEGER,
    UNIQUE (account, symbol, trade_id)
);
INSERT INTO fills_v3 (id, account, trade_id, client_id, symbol, side, amount, price, fee,
    fee_currency, ts, wall)
    SELECT id, '', trade_id, client_id, symbol, side, amount, price, fee, fee_currency, ts, wall
    FROM fills;
DROP TABLE fills;
ALTER TABLE fills_v3 RENAME TO fills;
CREATE INDEX fills_client ON fills (client_id);
CREATE INDEX fills_ts ON fills (ts);
CREATE INDEX fills_wall ON fills (wall);
""",
}

# Progress of an order: an update never moves an order backwards (updates can arrive late or
# twice, from the websocket and from REST reconciliation).
_RANK: dict[OrderStatus, int] = {
    OrderStatus.CREATED: 0,
    OrderStatus.SENT: 1,
    OrderStatus.OPEN: 2,
    OrderStatus.PARTIALLY_FILLED: 3,
    OrderStatus.FILLED: 4,
    OrderStatus.CANCELLED: 4,
    OrderStatus.REJECTED: 4,
    OrderStatus.EXPIRED: 4,
}
_TERMINAL_SQL = ", ".join(f"'{s.value}'" for s in OrderStatus if s.is_terminal)


class JournalError(Exception):
    """The journal cannot be opened (newer schema, not a journal, unreadable)."""


@dataclass(frozen=True, slots=True)
class InFlight:
    """An intent whose order is not known to be finished: reconcile it with the venue by
    client id before any new decision."""

    intent: OrderIntent
    ts_ms: int
    status: OrderStatus  # CREATED: journaled, maybe never sent; SENT: outcome unknown
    venue_order_id: str | None
    filled: float
    price: float | None


def _dumps(data: Any) -> str:
    return json.dumps(data, default=_json_default, separators=(",", ":"), allow_nan=False)


def _json_default(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def _safe_dumps(data: Any) -> str:
    # NaN/inf are not JSON; turn them into null rather than lose the whole row.
    try:
        return _dumps(data)
    except ValueError:
        return json.dumps(_clean_floats(data), default=_json_default, separators=(",", ":"))


def _clean_floats(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, Mapping):
        return {str(k): _clean_floats(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [_clean_floats(v) for v in data]
    return data


def iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


class Journal:
    def __init__(self, path: str | Path, *, readonly: bool = False) -> None:
        self.path = Path(path)
        self.readonly = readonly
        self._conn = self._connect()
        self._sync = ""
        try:
            self._prepare()
        except Exception:
            self._conn.close()
            raise

    @classmethod
    def open_readonly(cls, path: str | Path) -> Journal:
        """For the CLI and reports, alongside a running daemon: never writes, never creates."""
        return cls(path, readonly=True)

    # --- setup --------------------------------------------------------------------------------

    def _connect(self) -> sqlite3.Connection:
        if self.readonly:
            if not self.path.is_file():
                raise JournalError(f"no journal at {self.path}")
            uri = f"{self.path.resolve().as_uri()}?mode=ro"
            conn = sqlite3.connect(uri, uri=True, isolation_level=None, timeout=5.0)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            # isolation_level=None: no implicit transactions; each write opens and commits its own.
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=5.0)
        conn.row_factory = sqlite3.Row
        return conn

    def _prepare(self) -> None:
        try:
            self._conn.execute("PRAGMA foreign_keys = ON")
            if not self.readonly:
                mode = self._conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise JournalError(f"{self.path}: cannot switch to WAL mode (got {mode})")
                self._set_sync("FULL")
            self._migrate()
        except sqlite3.DatabaseError as e:
            raise JournalError(f"{self.path}: not a usable journal: {e}") from e

    def _version(self) -> int:
        has_meta = self._conn.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta'"
        ).fetchone()
        if has_meta is None:
            return 0
        row = self._conn.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
        return 0 if row is None else int(row[0])

    def _migrate(self) -> None:
        version = self._version()
        if version > SCHEMA_VERSION:
            raise JournalError(
                f"{self.path}: schema version {version} is newer than this code ({SCHEMA_VERSION})"
            )
        if version == SCHEMA_VERSION:
            return
        if self.readonly:
            raise JournalError(f"{self.path}: schema version {version}, needs a migration")
        if version == 0:
            self._create()
            return
        for v in range(version, SCHEMA_VERSION):
            self._apply_migration(v)

    def _create(self) -> None:
        # executescript commits on its own, so the DDL and the version go in one explicit script.
        self._conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + _SCHEMA_V1
            + "".join(_MIGRATIONS[v] for v in range(1, SCHEMA_VERSION))
            + f"INSERT INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');\n"
            + "COMMIT;"
        )
        _log.info("journal.created", path=str(self.path), schema_version=SCHEMA_VERSION)

    def _apply_migration(self, from_version: int) -> None:
        script = _MIGRATIONS[from_version]
        self._conn.executescript(
            "BEGIN IMMEDIATE;\n"
            + script
            + f"\nUPDATE meta SET value = '{from_version + 1}' WHERE key = 'schema_version';\n"
            + "COMMIT;"
        )
        _log.info("journal.migrated", path=str(self.path), to_version=from_version + 1)

    def _set_sync(self, level: Literal["FULL", "NORMAL"]) -> None:
        if self._sync != level:
            self._conn.execute(f"PRAGMA synchronous = {level}")
            self._sync = level

    def _write(self, durable: bool, fn: Callable[[sqlite3.Connection], Any]) -> Any:
        """Run `fn` in one transaction, committed before returning."""
        if self.readonly:
            raise JournalError("journal opened read-only")
        self._set_sync("FULL" if durable else "NORMAL")
        conn = self._conn
        conn.execute("BEGIN IMMEDIATE")
        try:
            result = fn(conn)
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        conn.execute("COMMIT")
        return result

    def schema_version(self) -> int:
        return self._version()

    def journal_mode(self) -> str:
        return str(self._conn.execute("PRAGMA journal_mode").fetchone()[0]).lower()

    def close(self) -> None:
        """Checkpoint and close; safe to call twice."""
        try:
            if not self.readonly:
                self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        except sqlite3.Error as e:
            _log.warning("journal.checkpoint_failed", path=str(self.path), error=repr(e))
        finally:
            self._conn.close()

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writes -------------------------------------------------------------------------------

    def record_decision(
        self,
        ts_ms: int,
        underlying: str,
        *,
        action: str,
        reason: str,
        delta: float | None = None,
        target: float | None = None,
        band: float | None = None,
        data: Mapping[str, Any] | None = None,
    ) -> None:
        """One policy decision. `action` is e.g. "trade" or "hold"; `data` any extra numbers."""
        row = (
            ts_ms,
            wall_ms(),
            underlying,
            delta,
            target,
            band,
            action,
            reason,
            _safe_dumps(data or {}),
        )
        self._write(
            False,
            lambda c: c.execute(
                "INSERT INTO decisions"
                " (ts, wall, underlying, delta, target, band, action, reason, json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                row,
            ),
        )

    def record_hedge_decision(self, decision: Any) -> None:
        """Journal a policy HedgeDecision-like object (underlying, ts_ms, trade, reason, delta,
        target, band; everything else goes to the json column)."""
        data = decision.as_dict() if hasattr(decision, "as_dict") else dataclasses.asdict(decision)
        self.record_decision(
            int(decision.ts_ms),
            str(decision.underlying),
            action="trade" if decision.trade else "hold",
            reason=str(decision.reason),
            delta=float(decision.delta),
            target=float(decision.target),
            band=float(decision.band),
            data=data,
        )

    def record_intent(self, intent: OrderIntent, ts_ms: int) -> None:
        """Journal an intent BEFORE its order is sent. A client id already journaled is left as it
        is (a retry reuses the id and must not reset the intent's state): logged, not an error."""

        def tx(c: sqlite3.Connection) -> bool:
            cur = c.execute(
                "INSERT OR IGNORE INTO intents"
                " (client_id, ts, underlying, symbol, side, amount, reason, reduce_only, state)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    intent.client_id,
                    ts_ms,
                    intent.underlying,
                    intent.symbol,
                    intent.side.value,
                    intent.amount,
                    intent.reason,
                    int(intent.reduce_only),
                    OrderStatus.CREATED.value,
                ),
            )
            return cur.rowcount == 1

        if not self._write(True, tx):
            _log.warning("journal.intent_exists", client_id=intent.client_id)

    def mark_sent(self, request: OrderRequest, ts_ms: int) -> None:
        """The order for an intent is about to go to the venue (call it right before the send):
        from here on, its outcome is unknown until the venue says."""
        update = OrderUpdate(
            client_id=request.client_id,
            symbol=request.symbol,
            side=request.side,
            amount=request.amount,
            filled=0.0,
            status=OrderStatus.SENT,
            ts_ms=ts_ms,
            price=request.price,
        )
        self.record_order_update(update)

    def record_order_update(self, update: OrderUpdate) -> None:
        """Merge one venue view of an order. Idempotent and monotone: a repeated or late update
        (lower status, less filled) changes nothing and adds no order_events row. An update for
        a client id that has no intent is not ours to track: logged, not stored."""

        def tx(c: sqlite3.Connection) -> Literal["changed", "same", "unknown"]:
            known = c.execute("SELECT 1 FROM intents WHERE client_id = ?", (update.client_id,))
            if known.fetchone() is None:
                return "unknown"
            old = c.execute("SELECT * FROM orders WHERE client_id = ?", (update.client_id,))
            merged = _merge(old.fetchone(), update)
            if merged is None:
                return "same"
            _upsert_order(c, merged, update)
            return "changed"

        outcome = self._write(True, tx)
        if outcome == "unknown":
            _log.warning(
                "journal.order_without_intent",
                client_id=update.client_id,
                symbol=update.symbol,
                status=update.status.value,
            )

    def record_fill(self, fill: Fill, account: str) -> bool:
        """Book a fill once: False when (account, symbol, trade_id) is already journaled (or
        the trade id on that symbol from before v3, whose rows name no account), across
        restarts and whichever feed (websocket, REST) delivered it first."""

        def tx(c: sqlite3.Connection) -> bool:
            seen = c.execute(
                "SELECT 1 FROM fills WHERE symbol = ? AND trade_id = ? AND account IN (?, '')",
                (fill.symbol, fill.trade_id, account),
            ).fetchone()
            if seen is not None:
                return False
            cur = c.execute(
                "INSERT OR IGNORE INTO fills (account, trade_id, client_id, symbol, side, amount,"
                " price, fee, fee_currency, ts, wall) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account,
                    fill.trade_id,
                    fill.client_id,
                    fill.symbol,
                    fill.side.value,
                    fill.amount,
                    fill.price,
                    fill.fee,
                    fill.fee_currency,
                    fill.ts_ms,
                    wall_ms(),
                ),
            )
            return cur.rowcount == 1

        booked: bool = self._write(True, tx)
        return booked

    def record_state(self, ts_ms: int, name: str, data: Mapping[str, Any] | None = None) -> None:
        """A state change worth keeping: trading state, breaker, halt, reconciliation result."""
        self._write(
            True,
            lambda c: c.execute(
                "INSERT INTO state_changes (ts, wall, name, json) VALUES (?, ?, ?, ?)",
                (ts_ms, wall_ms(), name, _safe_dumps(data or {})),
            ),
        )

    def emit(self, event: Event) -> None:
        """EventSink: journal the event. Never raises: a broken journal loses telemetry here, and
        the order paths (which do raise) are what protect the money."""
        try:
            payload = _safe_dumps(dict(event.data))
            self._write(
                False,
                lambda c: c.execute(
                    "INSERT INTO events (ts, wall, kind, name, json) VALUES (?, ?, ?, ?, ?)",
                    (event.ts_ms, wall_ms(), event.kind, event.name, payload),
                ),
            )
            if event.name == "hedge.decision":
                self._decision(event)
        except Exception as e:
            _log.error("journal.emit_failed", event_name=event.name, error=repr(e))

    def _decision(self, event: Event) -> None:
        """A decision the hedger reported (every trade, and every change of its reason; the
        repeats in between are the same decision again and are not kept)."""
        d = event.data

        def num(key: str) -> float | None:
            v = d.get(key)
            return float(v) if isinstance(v, int | float) else None

        self.record_decision(
            event.ts_ms,
            str(d.get("underlying", "")),
            action="trade" if d.get("trade") else "hold",
            reason=str(d.get("reason", "")),
            delta=num("delta"),
            target=num("target"),
            band=num("band"),
            data=d,
        )

    # --- reads --------------------------------------------------------------------------------

    def in_flight_intents(self) -> list[InFlight]:
        """Intents whose order is not terminal (or was never sent), oldest first."""
        rows = self._conn.execute(
            "SELECT i.*, o.status AS o_status, o.venue_order_id, o.filled, o.price"
            " FROM intents i LEFT JOIN orders o USING (client_id)"
            f" WHERE i.state NOT IN ({_TERMINAL_SQL}) ORDER BY i.ts, i.rowid"
        ).fetchall()
        return [_in_flight(r) for r in rows]

    def intent(self, client_id: str) -> OrderIntent | None:
        row = self._conn.execute("SELECT * FROM intents WHERE client_id = ?", (client_id,))
        found = row.fetchone()
        return None if found is None else _intent(found)

    def order(self, client_id: str) -> Row | None:
        row = self._conn.execute("SELECT * FROM orders WHERE client_id = ?", (client_id,))
        found = row.fetchone()
        return None if found is None else dict(found)

    def order_events(self, client_id: str) -> list[Row]:
        rows = self._conn.execute(
            "SELECT * FROM order_events WHERE client_id = ? ORDER BY id", (client_id,)
        )
        return [dict(r) for r in rows.fetchall()]

    def fills_for(self, client_id: str) -> list[Fill]:
        rows = self._conn.execute(
            "SELECT * FROM fills WHERE client_id = ? ORDER BY ts, id", (client_id,)
        )
        return [_fill(r) for r in rows.fetchall()]

    def filled_amount(self, client_id: str) -> float:
        """Contracts booked from fills for this client id (the fills, not the order's `filled`,
        are what the book has applied)."""
        row = self._conn.execute(
            "SELECT COALESCE(SUM(amount), 0.0) FROM fills WHERE client_id = ?", (client_id,)
        ).fetchone()
        return float(row[0])

    def orders_between(
        self, since_ms: int | None = None, until_ms: int | None = None, axis: Axis = "wall"
    ) -> list[Row]:
        """Orders created in [since, until), with their intent's underlying and reason."""
        return self._between(
            "SELECT o.client_id, o.ts_created AS ts, o.wall_created AS wall, i.underlying,"
            " o.symbol, o.side, o.amount, o.price, o.status, o.filled, o.average,"
            " o.venue_order_id, o.reason, i.reason AS intent_reason, o.ts_updated"
            " FROM orders o JOIN intents i USING (client_id)",
            ("o.ts_created", "o.wall_created"),
            since_ms,
            until_ms,
            axis,
        )

    def fills_between(
        self, since_ms: int | None = None, until_ms: int | None = None, axis: Axis = "wall"
    ) -> list[Row]:
        return self._between(
            "SELECT ts, wall, account, trade_id, client_id, symbol, side, amount, price, fee,"
            " fee_currency FROM fills",
            ("ts", "wall"),
            since_ms,
            until_ms,
            axis,
        )

    def decisions_between(
        self, since_ms: int | None = None, until_ms: int | None = None, axis: Axis = "wall"
    ) -> list[Row]:
        return self._between(
            "SELECT ts, wall, underlying, action, reason, delta, target, band, json FROM decisions",
            ("ts", "wall"),
            since_ms,
            until_ms,
            axis,
        )

    def events_between(
        self, since_ms: int | None = None, until_ms: int | None = None, axis: Axis = "wall"
    ) -> list[Row]:
        select = "SELECT ts, wall, kind, name, json FROM events"
        return self._between(select, ("ts", "wall"), since_ms, until_ms, axis)

    def state_changes_between(
        self, since_ms: int | None = None, until_ms: int | None = None, axis: Axis = "wall"
    ) -> list[Row]:
        select = "SELECT ts, wall, name, json FROM state_changes"
        return self._between(select, ("ts", "wall"), since_ms, until_ms, axis)

    def rows(
        self,
        table: Table,
        since_ms: int | None = None,
        until_ms: int | None = None,
        axis: Axis = "wall",
    ) -> list[Row]:
        """Rows of `table` in [since, until) of the wall clock (when they were written), or of
        the daemon's clock with axis "clock" (simulated time in a simulated run)."""
        readers: dict[Table, Callable[[int | None, int | None, Axis], list[Row]]] = {
            "orders": self.orders_between,
            "fills": self.fills_between,
            "decisions": self.decisions_between,
            "events": self.events_between,
        }
        return readers[table](since_ms, until_ms, axis)

    def _between(
        self,
        select: str,
        columns: tuple[str, str],
        since_ms: int | None,
        until_ms: int | None,
        axis: Axis,
    ) -> list[Row]:
        # The query text is built from constants only; the bounds are bound parameters. Rows
        # written before schema v2 have no wall time: their clock time stands in.
        clock, wall = columns
        ts_col = clock if axis == "clock" else f"COALESCE({wall}, {clock})"
        where, params = [], []
        if since_ms is not None:
            where.append(f"{ts_col} >= ?")
            params.append(since_ms)
        if until_ms is not None:
            where.append(f"{ts_col} < ?")
            params.append(until_ms)
        sql = select + (" WHERE " + " AND ".join(where) if where else "") + f" ORDER BY {ts_col}"
        return [dict(r) for r in self._conn.execute(sql, params).fetchall()]

    def export(
        self,
        table: Table,
        fmt: ExportFormat,
        out: IO[str],
        since_ms: int | None = None,
        until_ms: int | None = None,
        axis: Axis = "wall",
    ) -> int:
        """Write the rows of `table` in [since, until) as CSV or JSON; returns the row count."""
        rows = self.rows(table, since_ms, until_ms, axis)
        if fmt == "csv":
            write_csv(rows, out)
        else:
            write_json(rows, out)
        return len(rows)


# --- row helpers ------------------------------------------------------------------------------


def with_time(rows: Iterable[Row]) -> list[Row]:
    """Rows with readable UTC columns first: `time`, when it was written (wall clock), and
    `clock_time`, the daemon's clock (simulated time in a simulated run; the same as `time`,
    up to latency, otherwise). The epoch-ms `ts` and `wall` stay for machines."""
    out = []
    for r in rows:
        wall = r.get("wall")
        ts = int(r["ts"])
        out.append(
            {"time": iso_ms(int(wall) if wall is not None else ts), "clock_time": iso_ms(ts), **r}
        )
    return out


def write_csv(rows: list[Row], out: IO[str]) -> None:
    rows = with_time(rows)
    if not rows:
        return
    writer = csv.DictWriter(out, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)


def write_json(rows: list[Row], out: IO[str]) -> None:
    decoded = [_decode_json_col(r) for r in with_time(rows)]
    json.dump(decoded, out, indent=2, default=_json_default)
    out.write("\n")


def _decode_json_col(row: Row) -> Row:
    # The stored json column is a document; nest it rather than export a string of JSON.
    if isinstance(row.get("json"), str):
        try:
            return {**row, "json": json.loads(row["json"])}
        except ValueError:
            return row
    return row


def _merge(old: sqlite3.Row | None, u: OrderUpdate) -> Row | None:
    """The order row after applying `u`, or None when `u` adds nothing."""
    if old is None:
        return {
            "venue_order_id": u.venue_order_id,
            "status": u.status,
            "filled": u.filled,
            "average": u.average,
            "price": u.price,
            "reason": u.reason,
            "ts_created": u.ts_ms,
            "ts_updated": u.ts_ms,
        }
    old_status = OrderStatus(old["status"])
    status = u.status if _RANK[u.status] > _RANK[old_status] else old_status
    more_filled = u.filled > float(old["filled"]) + 1e-12
    # The average follows the fills: take the update's only when it knows of more of them.
    take_average = u.average is not None and (more_filled or old["average"] is None)
    merged: Row = {
        "venue_order_id": old["venue_order_id"] or u.venue_order_id,
        "status": status,
        "filled": max(float(old["filled"]), u.filled),
        "average": u.average if take_average else old["average"],
        # A re-priced (amended) order reports its new price; a late update must not undo it.
        "price": u.price if u.price is not None and u.ts_ms >= old["ts_updated"] else old["price"],
        "reason": old["reason"] or u.reason,
        "ts_created": int(old["ts_created"]),
        "ts_updated": max(int(old["ts_updated"]), u.ts_ms),
    }
    same = (
        merged["venue_order_id"] == old["venue_order_id"]
        and merged["status"] == old_status
        and merged["filled"] == float(old["filled"])
        and merged["average"] == old["average"]
        and merged["price"] == old["price"]
        and merged["reason"] == old["reason"]
    )
    return None if same else merged


def _upsert_order(c: sqlite3.Connection, m: Row, u: OrderUpdate) -> None:
    raw = _safe_dumps(dataclasses.asdict(u))
    status = OrderStatus(m["status"]).value
    c.execute(
        "INSERT INTO orders (client_id, venue_order_id, symbol, side, amount, status, filled,"
        " average, price, reason, ts_created, ts_updated, json, wall_created)"
        " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
        " ON CONFLICT (client_id) DO UPDATE SET venue_order_id = excluded.venue_order_id,"
        " status = excluded.status, filled = excluded.filled, average = excluded.average,"
        " price = excluded.price, reason = excluded.reason, ts_updated = excluded.ts_updated,"
        " json = excluded.json",
        (
            u.client_id,
            m["venue_order_id"],
            u.symbol,
            u.side.value,
            u.amount,
            status,
            m["filled"],
            m["average"],
            m["price"],
            m["reason"],
            m["ts_created"],
            m["ts_updated"],
            raw,
            wall_ms(),
        ),
    )
    c.execute(
        "INSERT INTO order_events (client_id, ts, status, filled, json) VALUES (?, ?, ?, ?, ?)",
        (u.client_id, u.ts_ms, u.status.value, u.filled, raw),
    )
    c.execute("UPDATE intents SET state = ? WHERE client_id = ?", (status, u.client_id))


def _intent(r: sqlite3.Row) -> OrderIntent:
    return OrderIntent(
        client_id=r["client_id"],
        underlying=r["underlying"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        amount=float(r["amount"]),
        reason=r["reason"],
        reduce_only=bool(r["reduce_only"]),
    )


def _in_flight(r: sqlite3.Row) -> InFlight:
    status = r["o_status"] or r["state"]
    return InFlight(
        intent=_intent(r),
        ts_ms=int(r["ts"]),
        status=OrderStatus(status),
        venue_order_id=r["venue_order_id"],
        filled=float(r["filled"] or 0.0),
        price=None if r["price"] is None else float(r["price"]),
    )


def _fill(r: sqlite3.Row) -> Fill:
    return Fill(
        client_id=r["client_id"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        amount=float(r["amount"]),
        price=float(r["price"]),
        fee=float(r["fee"]),
        fee_currency=r["fee_currency"],
        ts_ms=int(r["ts"]),
        trade_id=r["trade_id"],
    )
