"""The same seed gives the same market, books, fills and account as the exchange that rebuilt
every book on every tick.

tests/fixtures/sim/golden_seed9.json was recorded by running `scenario()` below against the
simulated exchange as of commit b5c2b88 (eager books, one Black-Scholes call per option), with
`python -m tests.test_sim_golden`. The lazy exchange must reproduce it exactly: prices, tickers,
books after taker orders, partial fills, rejects, cancels, expiry settlement and the saved state
(random generator states included).
"""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.orders import OrderRequest, Side
from bot.venues.sim.exchange import SimExchange
from bot.venues.sim.state import exchange_to_json

FIXTURE = Path(__file__).parent / "fixtures" / "sim" / "golden_seed9.json"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
STEP_MS = 1_200_000  # twenty minutes a tick: 40 hours in 120 ticks, past the one-day expiry
PERP = "BTC/USDT:USDT"


def plain(x: Any) -> Any:
    """Dataclasses, enums and tuples as JSON values."""
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: plain(getattr(x, f.name)) for f in dataclasses.fields(x)}
    if isinstance(x, enum.Enum):
        return x.value
    if isinstance(x, list | tuple):
        return [plain(v) for v in x]
    if isinstance(x, dict):
        return {k: plain(v) for k, v in x.items()}
    return x


def _submit(
    ex: SimExchange,
    out: list[Any],
    i: int,
    now: int,
    cid: str,
    sym: str,
    side: Side,
    amount: float,
    price: float,
    **kw: Any,
) -> None:
    out.append(plain(ex.submit(OrderRequest(f"{cid}-{i}", sym, side, amount, price, **kw), now)))


def scenario() -> dict[str, Any]:
    cfg = SimConfig(
        seed=9,
        partial_fill_rate=0.5,
        reject_rate=0.1,
        underlyings={
            "BTC": SimUnderlying(price=60_000.0),
            "ETH": SimUnderlying(price=3_000.0, vol=0.8, jump_intensity=0.0),
        },
        balances={"USDT": 1e6, "USDC": 1e6, "BTC": 5.0, "ETH": 50.0},
    )
    positions = [
        PositionConfig(underlying="BTC", kind="perp", qty=0.5),
        PositionConfig(
            underlying="BTC",
            kind="option",
            settlement="inverse",
            option_type="put",
            strike=55_000,
            expiry_days=30,
            qty=2,
        ),
        PositionConfig(
            underlying="BTC",
            kind="option",
            option_type="call",
            strike=65_000,
            expiry_days=30,
            qty=-1,
        ),
        PositionConfig(
            underlying="ETH", kind="option", option_type="call", strike=3_000, expiry_days=1, qty=3
        ),
        PositionConfig(
            underlying="ETH", kind="future", settlement="inverse", expiry_days=1, qty=-20
        ),
    ]
    ex = SimExchange.create(cfg, positions, T0)
    symbols = sorted(ex.instruments)
    options = [s for s in symbols if s.endswith(("-C", "-P"))]
    ticks: list[Any] = []
    now = T0
    for i in range(120):
        now += STEP_MS
        row: dict[str, Any] = {"tick": plain(ex.tick(now))}
        if i % 2 == 0:
            row["tickers"] = [plain(ex.ticker(s)) for s in symbols if s not in ex.expired]
        perp = ex.ticker(PERP)
        assert perp.ask is not None and perp.bid is not None
        orders: list[Any] = []
        submit = functools.partial(_submit, ex, orders, i, now)
        if i % 3 == 0:  # walks the book
            submit("take", PERP, Side.BUY, 12.5, round(perp.ask + 5.0, 1))
        if i % 3 == 1:  # rests above the ask; fills as maker when the market trades through
            submit("rest", PERP, Side.SELL, 0.4, round(perp.ask + 15.0, 1))
        if i % 4 == 2:
            submit("post", PERP, Side.BUY, 0.2, perp.bid, post_only=True)
            submit("cross", PERP, Side.BUY, 0.2, perp.ask, post_only=True)  # rejected
        if i % 4 == 3:
            orders.append(plain(ex.cancel(f"post-{i - 1}", now)))
        if i % 5 == 0:
            for sym in options:
                if sym in ex.expired:
                    continue
                t = ex.ticker(sym)
                assert t.ask is not None and t.bid is not None
                side = Side.BUY if i % 10 == 0 else Side.SELL
                price = t.ask if side is Side.BUY else t.bid
                submit(f"opt-{sym}", sym, side, 0.5, price)
        if i % 11 == 0:
            submit("reduce", PERP, Side.SELL, 0.1, perp.bid, reduce_only=True)
            submit("bad", PERP, Side.BUY, 0.0005, perp.ask)  # off the amount step
        row["orders"] = orders
        if i % 6 == 0:  # the book as takers left it in this tick
            row["perp_book"] = plain(ex.books[PERP])
        ticks.append(row)
    return {"ticks": ticks, "state": exchange_to_json(ex)}


def same(got: Any, want: Any, where: str) -> None:
    """Equal, floats to the last few bits: numpy's exp/log may differ in the last bit between
    versions and CPUs (SIMD paths), which is not a different market. Anything else is exact:
    strings, integers, None, the random generators' states, every rounded price level."""
    if isinstance(want, float) and isinstance(got, float):
        assert math.isclose(got, want, rel_tol=1e-12, abs_tol=1e-12), f"{where}: {got} != {want}"
    elif isinstance(want, dict) and isinstance(got, dict):
        assert got.keys() == want.keys(), f"{where}: keys differ"
        for k in want:
            same(got[k], want[k], f"{where}.{k}")
    elif isinstance(want, list) and isinstance(got, list):
        assert len(got) == len(want), f"{where}: lengths differ"
        for i, (g, w) in enumerate(zip(got, want, strict=True)):
            same(g, w, f"{where}[{i}]")
    else:
        assert got == want and type(got) is type(want), f"{where}: {got!r} != {want!r}"


def test_same_seed_same_exchange_as_the_eager_one() -> None:
    want = json.loads(FIXTURE.read_text())
    got = json.loads(json.dumps(scenario()))  # the same JSON round trip the fixture went through
    assert len(got["ticks"]) == len(want["ticks"])
    for n, (g, w) in enumerate(zip(got["ticks"], want["ticks"], strict=True)):
        for key in w:
            same(g.get(key), w[key], f"tick {n}: {key}")
    same(got["state"], want["state"], "state")


def test_the_comparison_catches_a_different_market() -> None:
    want = json.loads(FIXTURE.read_text())
    moved = json.loads(json.dumps(want))
    moved["ticks"][0]["tickers"][0]["mark"] *= 1 + 1e-9
    with pytest.raises(AssertionError, match="mark"):
        same(moved["ticks"][0], want["ticks"][0], "tick 0")


if __name__ == "__main__":
    data = scenario()
    data["source"] = sys.argv[1] if len(sys.argv) > 1 else "unknown"
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    FIXTURE.write_text(json.dumps(data, separators=(",", ":")) + "\n")
