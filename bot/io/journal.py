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

import dataclasses
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any, Literal

import structlog

from bot.clock import wall_ms
from bot.core.orders import (
    Fill,
    FillRecord,
    OrderIntent,
    OrderRequest,
    OrderStatus,
    OrderUpdate,
    same_trade,
)
from bot.events import Event
from bot.io.journal_reads import JournalReads
from bot.io.journal_rows import merge_order, safe_dumps, upsert_order
from bot.io.journal_schema import MIGRATIONS, SCHEMA_V1, SCHEMA_VERSION

_log = structlog.get_logger("hedgebot.journal")


class JournalError(Exception):
    """The journal cannot be opened (newer schema, not a journal, unreadable)."""


class Journal(JournalReads):
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
            + SCHEMA_V1
            + "".join(MIGRATIONS[v] for v in range(1, SCHEMA_VERSION))
            + f"INSERT INTO meta (key, value) VALUES ('schema_version', '{SCHEMA_VERSION}');\n"
            + "COMMIT;"
        )
        _log.info("journal.created", path=str(self.path), schema_version=SCHEMA_VERSION)

    def _apply_migration(self, from_version: int) -> None:
        script = MIGRATIONS[from_version]
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
            safe_dumps(data or {}),
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
            merged = merge_order(old.fetchone(), update)
            if merged is None:
                return "same"
            upsert_order(c, merged, update)
            return "changed"

        outcome = self._write(True, tx)
        if outcome == "unknown":
            _log.warning(
                "journal.order_without_intent",
                client_id=update.client_id,
                symbol=update.symbol,
                status=update.status.value,
            )

    def record_fill(self, fill: Fill, account: str) -> FillRecord:
        """Book a fill once: KNOWN (falsy) when (account, symbol, trade_id) is already journaled
        for the same trade (or the trade id on that symbol from before v3, whose rows name no
        account), across restarts and whichever feed (websocket, REST) delivered it first.
        REUSED: the id is journaled for another order (core.orders.same_trade): a new trade,
        kept under `<trade id>@<client id>`."""
        reused_id = f"{fill.trade_id}@{fill.client_id}"

        def tx(c: sqlite3.Connection) -> FillRecord:
            seen = c.execute(
                "SELECT trade_id, client_id FROM fills WHERE symbol = ? AND trade_id IN (?, ?)"
                " AND account IN (?, '')",
                (fill.symbol, fill.trade_id, reused_id, account),
            ).fetchall()
            if any(same_trade(row[1], fill.client_id) for row in seen):
                return FillRecord.KNOWN
            trade_id = reused_id if seen else fill.trade_id
            cur = c.execute(
                "INSERT OR IGNORE INTO fills (account, trade_id, client_id, symbol, side, amount,"
                " price, fee, fee_currency, ts, wall) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    account,
                    trade_id,
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
            if cur.rowcount != 1:
                return FillRecord.KNOWN
            return FillRecord.REUSED if seen else FillRecord.NEW

        record: FillRecord = self._write(True, tx)
        return record

    def record_state(self, ts_ms: int, name: str, data: Mapping[str, Any] | None = None) -> None:
        """A state change worth keeping: trading state, breaker, halt, reconciliation result."""
        self._write(
            True,
            lambda c: c.execute(
                "INSERT INTO state_changes (ts, wall, name, json) VALUES (?, ?, ?, ?)",
                (ts_ms, wall_ms(), name, safe_dumps(data or {})),
            ),
        )

    def emit(self, event: Event) -> None:
        """EventSink: journal the event. Never raises: a broken journal loses telemetry here, and
        the order paths (which do raise) are what protect the money."""
        try:
            payload = safe_dumps(dict(event.data))
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
