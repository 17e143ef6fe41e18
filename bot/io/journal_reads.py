"""The journal's read side: in-flight intents for recovery, orders and fills by client id, and
rows of a table over a time range for the CLI and exports. Never writes."""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from typing import IO

from bot.core.orders import Fill, OrderIntent
from bot.io.journal_rows import (
    TERMINAL_SQL,
    Axis,
    ExportFormat,
    InFlight,
    Row,
    Table,
    fill_of,
    in_flight_of,
    intent_of,
    write_csv,
    write_json,
)


class JournalReads:
    """Queries over the journal's connection (a read-only journal is only this)."""

    _conn: sqlite3.Connection

    def in_flight_intents(self) -> list[InFlight]:
        """Intents whose order is not terminal (or was never sent), oldest first."""
        rows = self._conn.execute(
            "SELECT i.*, o.status AS o_status, o.venue_order_id, o.filled, o.price"
            " FROM intents i LEFT JOIN orders o USING (client_id)"
            f" WHERE i.state NOT IN ({TERMINAL_SQL}) ORDER BY i.ts, i.rowid"
        ).fetchall()
        return [in_flight_of(r) for r in rows]

    def intent(self, client_id: str) -> OrderIntent | None:
        row = self._conn.execute("SELECT * FROM intents WHERE client_id = ?", (client_id,))
        found = row.fetchone()
        return None if found is None else intent_of(found)

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
        return [fill_of(r) for r in rows.fetchall()]

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
