"""Saving the simulated exchange: its JSON form, in one file replaced atomically.

`os.replace` of a fully written temporary file means a reader (a restart after SIGKILL) sees the
old state or the new one, never half of one. No fsync: a killed process loses nothing the kernel
already holds; only a power cut could, and a paper exchange can live with that.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

from bot.config_sim import PositionConfig, SimConfig
from bot.venues.sim.exchange import Saved, SimExchange
from bot.venues.sim.ledger import Ledger, Position
from bot.venues.sim.listing import build_listing
from bot.venues.sim.market import MarketState
from bot.venues.sim.records import (
    SimOrder,
    fill_from_json,
    fill_to_json,
    instrument_from_json,
    instrument_to_json,
)

VERSION = 1


def exchange_to_json(ex: SimExchange) -> dict[str, Any]:
    return {
        "version": VERSION,
        "start_ms": ex.start_ms,
        "market": {"ts_ms": ex.market.ts_ms, "prices": dict(ex.market.prices)},
        "rng": {
            "market": ex.market_rng.bit_generator.state,
            "orders": ex.order_rng.bit_generator.state,
        },
        "instruments": [instrument_to_json(i) for i in ex.instruments.values()],
        "expired": sorted(ex.expired),
        "orders": [o.to_json() for o in ex.orders.values()],
        "fills": [fill_to_json(f) for f in ex.fills],
        "positions": {s: [p.qty, p.cost] for s, p in ex.ledger.positions.items()},
        "balances": dict(ex.ledger.balances),
        "seq": {"order": ex.order_seq, "trade": ex.trade_seq},
        # Only when set: a state of a bare SimExchange reads as before.
        **({"id_prefix": ex.id_prefix} if ex.id_prefix else {}),
    }


def exchange_from_json(
    cfg: SimConfig, data: Mapping[str, Any], positions: Iterable[PositionConfig] = ()
) -> SimExchange:
    """The exchange saved in `data`. Dynamics (vols, fees of new listings, book shape) come
    from `cfg`; prices, orders and the account from the saved state."""
    if data.get("version") != VERSION:
        raise ValueError(f"unsupported sim state version {data.get('version')!r}")
    start_ms = int(data["start_ms"])
    prices = {u: float(p) for u, p in data["market"]["prices"].items()}
    missing = sorted(set(prices) - set(cfg.underlyings))
    if missing:
        raise ValueError(f"saved sim state has underlyings not in sim.underlyings: {missing}")
    for u, x in cfg.underlyings.items():
        prices.setdefault(u, x.price)
    instruments = build_listing(cfg, positions, start_ms)
    instruments.update({d["symbol"]: instrument_from_json(d) for d in data["instruments"]})
    market = MarketState(ts_ms=int(data["market"]["ts_ms"]), prices=prices)
    saved = Saved(
        ledger=Ledger(
            positions={s: Position(qty=q, cost=c) for s, (q, c) in data["positions"].items()},
            balances={c: float(v) for c, v in data["balances"].items()},
        ),
        orders=[SimOrder.from_json(d) for d in data["orders"]],
        fills=[fill_from_json(d) for d in data["fills"]],
        expired=set(data["expired"]),
        rng=(data["rng"]["market"], data["rng"]["orders"]),
        order_seq=int(data["seq"]["order"]),
        trade_seq=int(data["seq"]["trade"]),
        id_prefix=str(data.get("id_prefix", "")),
    )
    return SimExchange(cfg, instruments, market, start_ms, saved)


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(data, f, separators=(",", ":"))
    os.replace(tmp, path)


def read(path: Path) -> dict[str, Any] | None:
    """The saved state, or None when there is none."""
    try:
        with open(path, encoding="utf-8") as f:
            data: dict[str, Any] = json.load(f)
    except FileNotFoundError:
        return None
    return data


def saved_clock_ms(path: Path) -> int | None:
    """Simulated time at the last save, so a restarted daemon can start its clock there."""
    data = read(path)
    return None if data is None else int(data["clock_ms"])
