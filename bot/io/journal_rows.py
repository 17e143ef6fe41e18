"""The journal's row types and codecs: JSON columns, order merging (an update never moves an
order backwards), rows to domain objects, and CSV/JSON export of rows."""

from __future__ import annotations

import csv
import dataclasses
import json
import math
import sqlite3
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, Literal

from bot.clock import wall_ms
from bot.core.orders import Fill, OrderIntent, OrderStatus, OrderUpdate, Side

Row = dict[str, Any]
Table = Literal["orders", "fills", "decisions", "events"]
Axis = Literal["wall", "clock"]  # which time a range applies to
TABLES: tuple[Table, ...] = ("orders", "fills", "decisions", "events")
ExportFormat = Literal["csv", "json"]

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
TERMINAL_SQL = ", ".join(f"'{s.value}'" for s in OrderStatus if s.is_terminal)


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


def dumps(data: Any) -> str:
    return json.dumps(data, default=json_default, separators=(",", ":"), allow_nan=False)


def json_default(o: Any) -> Any:
    if dataclasses.is_dataclass(o) and not isinstance(o, type):
        return dataclasses.asdict(o)
    if isinstance(o, Path):
        return str(o)
    return repr(o)


def safe_dumps(data: Any) -> str:
    # NaN/inf are not JSON; turn them into null rather than lose the whole row.
    try:
        return dumps(data)
    except ValueError:
        return json.dumps(clean_floats(data), default=json_default, separators=(",", ":"))


def clean_floats(data: Any) -> Any:
    if isinstance(data, float):
        return data if math.isfinite(data) else None
    if isinstance(data, Mapping):
        return {str(k): clean_floats(v) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [clean_floats(v) for v in data]
    return data


def iso_ms(ts_ms: int) -> str:
    return datetime.fromtimestamp(ts_ms / 1000, tz=UTC).isoformat(timespec="milliseconds")


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
    decoded = [decode_json_col(r) for r in with_time(rows)]
    json.dump(decoded, out, indent=2, default=json_default)
    out.write("\n")


def decode_json_col(row: Row) -> Row:
    # The stored json column is a document; nest it rather than export a string of JSON.
    if isinstance(row.get("json"), str):
        try:
            return {**row, "json": json.loads(row["json"])}
        except ValueError:
            return row
    return row


def merge_order(old: sqlite3.Row | None, u: OrderUpdate) -> Row | None:
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


def upsert_order(c: sqlite3.Connection, m: Row, u: OrderUpdate) -> None:
    raw = safe_dumps(dataclasses.asdict(u))
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


def intent_of(r: sqlite3.Row) -> OrderIntent:
    return OrderIntent(
        client_id=r["client_id"],
        underlying=r["underlying"],
        symbol=r["symbol"],
        side=Side(r["side"]),
        amount=float(r["amount"]),
        reason=r["reason"],
        reduce_only=bool(r["reduce_only"]),
    )


def in_flight_of(r: sqlite3.Row) -> InFlight:
    status = r["o_status"] or r["state"]
    return InFlight(
        intent=intent_of(r),
        ts_ms=int(r["ts"]),
        status=OrderStatus(status),
        venue_order_id=r["venue_order_id"],
        filled=float(r["filled"] or 0.0),
        price=None if r["price"] is None else float(r["price"]),
    )


def fill_of(r: sqlite3.Row) -> Fill:
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
