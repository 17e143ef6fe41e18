"""The simulated exchange survives restarts: close/reopen and SIGKILL."""

from __future__ import annotations

import asyncio
import json
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from bot.config_sim import PositionConfig, SimConfig, SimUnderlying
from bot.core.orders import OrderRequest, OrderStatus, Side
from bot.venues.base import VenueAmbiguous, VenueRejected
from bot.venues.sim import SimVenue, saved_clock_ms

T0 = 1_767_225_600_000
PERP = "BTC/USDT:USDT"


class ManualClock:
    def __init__(self, start_ms: int = T0) -> None:
        self.ms = start_ms

    def now_ms(self) -> int:
        return self.ms

    async def sleep(self, seconds: float) -> None:
        self.ms += round(seconds * 1000)
        await asyncio.sleep(0)

    def to_real(self, seconds: float) -> float:
        return 0.0


def config(path: Path, **kw: Any) -> SimConfig:
    return SimConfig(
        seed=3,
        state_file=path,
        partial_fill_rate=0.5,
        underlyings={"BTC": SimUnderlying(price=60_000.0), "ETH": SimUnderlying(price=3_000.0)},
        **kw,
    )


POSITIONS = [
    PositionConfig(underlying="BTC", kind="perp", settlement="inverse", qty=-1000.0),
    PositionConfig(
        underlying="BTC",
        kind="option",
        settlement="inverse",
        option_type="put",
        strike=55_000,
        expiry_days=30,
        qty=3.0,
    ),
]


async def snapshot(venue: SimVenue) -> dict[str, Any]:
    ex = venue.exchange
    return {
        "instruments": dict(await venue.load_instruments()),
        "positions": sorted(await venue.fetch_positions(), key=lambda p: p.symbol),
        "balances": dict(await venue.fetch_balances()),
        "open": list(await venue.fetch_open_orders()),
        "orders": {cid: await venue.fetch_order(cid, "") for cid in ex.orders},
        "fills": {cid: list(await venue.fetch_fills(cid, "")) for cid in ex.orders},
        "market": (ex.market.ts_ms, dict(ex.market.prices)),
        "rng": (ex.market_rng.bit_generator.state, ex.order_rng.bit_generator.state),
        "seq": (ex.order_seq, ex.trade_seq),
        "pending": {cid: o.to_json() for cid, o in ex.orders.items()},
        "tickers": {s: await venue.fetch_ticker(s) for s in await venue.load_instruments()},
    }


async def busy_venue(path: Path, clock: ManualClock) -> SimVenue:
    venue = SimVenue("sim", config(path), POSITIONS, clock, run_market=False)
    await venue.connect()
    for i in range(12):
        clock.ms += 1000
        venue.tick()
        t = await venue.fetch_ticker(PERP)
        assert t.ask is not None and t.bid is not None
        side = Side.BUY if i % 3 else Side.SELL
        price = round(t.ask + 30, 1) if side is Side.BUY else round(t.ask + 500, 1)
        await venue.create_order(OrderRequest(f"c{i}", PERP, side, 3.5, price))
    with pytest.raises(VenueRejected):
        await venue.create_order(OrderRequest("bad", PERP, Side.BUY, 0.0001, 1.0))
    return venue


async def test_round_trip_close_and_reopen(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    clock = ManualClock()
    venue = await busy_venue(path, clock)
    before = await snapshot(venue)
    assert before["open"] and any(o.to_json()["pending"] for o in venue.exchange.orders.values())
    await venue.close()
    assert saved_clock_ms(path) == clock.ms

    # A new process with the same config: the saved exchange wins, and the starting positions
    # are not opened a second time.
    reopened = SimVenue("sim", config(path), POSITIONS, ManualClock(clock.ms), run_market=False)
    await reopened.connect()
    assert await snapshot(reopened) == before

    # Both continue identically: same market path, same partial-fill deliveries.
    for v in (venue, reopened):
        v._clock.ms += 1000  # type: ignore[attr-defined]
        v.tick()
    assert await snapshot(reopened) == await snapshot(venue)
    await reopened.close()


async def test_ambiguous_create_is_findable_after_restart(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    clock = ManualClock()
    venue = SimVenue("sim", config(path), [], clock, run_market=False)
    await venue.connect()
    venue.inject_lost_response()
    with pytest.raises(VenueAmbiguous):
        await venue.create_order(OrderRequest("amb", PERP, Side.BUY, 0.5, 61_000.0))
    # no close: the process dies here
    restarted = SimVenue("sim", config(path), [], ManualClock(clock.ms), run_market=False)
    await restarted.connect()
    found = await restarted.fetch_order("amb", PERP)
    assert found is not None and found.amount == 0.5
    assert list(restarted.exchange.orders) == ["amb"]
    with pytest.raises(VenueRejected, match="duplicate"):
        await restarted.create_order(OrderRequest("amb", PERP, Side.BUY, 0.5, 61_000.0))


def any_files(directory: Path) -> bool:
    return any(directory.iterdir())


async def test_no_state_file_means_no_writes(tmp_path: Path) -> None:
    cfg = SimConfig(underlyings={"BTC": SimUnderlying(price=60_000.0)})
    venue = SimVenue("sim", cfg, [], ManualClock(), run_market=False)
    await venue.connect()
    await venue.create_order(OrderRequest("a", PERP, Side.BUY, 0.1, 61_000.0))
    await venue.close()
    assert not any_files(tmp_path)


async def test_unsupported_state_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    path.write_text(json.dumps({"version": 99}))
    venue = SimVenue("sim", config(path), [], ManualClock(), run_market=False)
    with pytest.raises(ValueError, match="version"):
        await venue.connect()


ROOT = Path(__file__).resolve().parents[1]
CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from pathlib import Path
    from bot.clock import LiveClock
    from bot.config_sim import SimConfig, SimUnderlying
    from bot.core.orders import OrderRequest, Side
    from bot.venues.sim import SimVenue

    async def main() -> None:
        cfg = SimConfig(state_file=Path(sys.argv[1]), tick_ms=100, seed=11,
                        underlyings={"BTC": SimUnderlying(price=60_000.0)})
        venue = SimVenue("sim", cfg, [], LiveClock(speed=100.0, start_ms=int(sys.argv[2])))
        await venue.connect()
        await venue.create_order(OrderRequest("filled", "BTC/USDT:USDT", Side.BUY, 0.2, 61_000.0))
        await venue.create_order(OrderRequest("resting", "BTC/USDT:USDT", Side.BUY, 0.3, 50_000.0))
        print("ready", flush=True)
        await asyncio.sleep(60)

    asyncio.run(main())
    """
)


def leftovers(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir() if p.name.endswith(".tmp")]


async def test_survives_sigkill(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        str(path),
        str(T0),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.DEVNULL,
        cwd=ROOT,
    )
    try:
        assert proc.stdout is not None
        line = b""
        while line.strip() != b"ready":  # structlog prints to stdout too
            line = await asyncio.wait_for(proc.stdout.readline(), 30)
            assert line, "the child exited early"
        await asyncio.sleep(0.3)  # let the market tick (and save) a few times
        proc.send_signal(signal.SIGKILL)
        await asyncio.wait_for(proc.wait(), 10)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    assert proc.returncode == -signal.SIGKILL
    saved_ms = saved_clock_ms(path)
    assert saved_ms is not None and saved_ms >= T0
    cfg = SimConfig(state_file=path, seed=11, underlyings={"BTC": SimUnderlying(price=60_000.0)})
    venue = SimVenue("sim", cfg, [], ManualClock(saved_ms + 1000), run_market=False)
    await venue.connect()
    filled = await venue.fetch_order("filled", PERP)
    resting = await venue.fetch_order("resting", PERP)
    assert filled is not None and filled.status is OrderStatus.FILLED
    assert resting is not None and resting.status is OrderStatus.OPEN
    assert [p.qty for p in await venue.fetch_positions()] == [0.2]
    assert leftovers(tmp_path) == []


async def test_restart_on_a_clock_behind_the_state_ticks_at_once(tmp_path: Path) -> None:
    path = tmp_path / "sim.json"
    clock = ManualClock()
    venue = SimVenue("sim", config(path), [], clock, run_market=False)
    await venue.connect()
    clock.ms += 3_600_000
    venue.tick()
    await venue.create_order(OrderRequest("a", PERP, Side.BUY, 0.5, 70_000.0))
    price = venue.exchange.market.prices["BTC"]
    await venue.close()

    behind = ManualClock(T0 + 1000)  # e.g. a scaled clock restarted at wall time
    restarted = SimVenue("sim", config(path), [], behind, run_market=False)
    await restarted.connect()
    assert restarted.exchange.market.prices["BTC"] == price
    assert (await restarted.fetch_ticker(PERP)).ts_ms == T0 + 1000
    assert await restarted.fetch_order("a", PERP) is not None
    behind.ms += 1000
    restarted.tick()
    assert (await restarted.fetch_ticker(PERP)).ts_ms == T0 + 2000
