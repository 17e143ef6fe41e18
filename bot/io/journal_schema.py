"""The journal's SQLite schema: version 1 as created, and each migration to the next version.
A journal opened by newer code is migrated in place; one written by newer code is refused."""

from __future__ import annotations

SCHEMA_VERSION = 3

SCHEMA_V1 = """
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
MIGRATIONS: dict[int, str] = {
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
