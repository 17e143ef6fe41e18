"""One backtest path: the live hedger, risk gate, executor and simulated exchange on a virtual
clock, as fast as the CPU allows.

The driver advances the clock tick by tick; at each tick the simulated exchange moves its market
(and fills resting orders), the hedger gets every line's ticker and the hedge instrument's book,
and decides. Orders go through the same executor code as live, on clock timers that the virtual
loop jumps to. Order updates and fills reach the hedger as the venue publishes them, like a
websocket that never drops. Nothing touches the network, a journal or MQTT. Quiet ticks (only
the index moves, inside every corridor) are stepped over by the fast-forward (fastforward.py)
with the same results; what a tick books goes through ticks.py either way.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.backtest import cross_stats, ticks
from bot.backtest.attribution import Attribution
from bot.backtest.data import Recorded
from bot.backtest.fastforward import FastForward, PathParts
from bot.backtest.recorder import EventsFile, Recorder
from bot.backtest.schedule import DAY_MS, grid, stale_checks
from bot.backtest.series import Series
from bot.backtest.valuation import value_usd
from bot.clock import VirtualClock, run_virtual
from bot.config import Settings
from bot.core.book import LineKey
from bot.core.instruments import Instrument, Kind
from bot.events import EventBus
from bot.hedger.hedger import Hedger
from bot.shell.funding import FundingWatch
from bot.shell.positions import PositionWatch
from bot.shell.reconcile import Reconciler
from bot.venues.base import Venue
from bot.venues.sim import SimVenue
from bot.venues.sim.replay import ReplayModel


@dataclass(frozen=True, slots=True)
class PathSpec:
    seed: int
    days: float
    tick_ms: int
    start_ms: int
    data: Recorded | None = None  # --data: recorded prices replace the synthetic path
    # --data: tick at these times (the file's own, bot/backtest/schedule.py); None: every tick_ms
    times: tuple[int, ...] | None = None

    def ticks(self) -> Sequence[int]:
        if self.times is not None:
            return self.times
        return grid(self.start_ms, self.start_ms + int(self.days * DAY_MS), self.tick_ms)


@dataclass(slots=True)
class PathResult:
    seed: int
    ticks: int = 0
    pnl_usd: float = 0.0
    pnl_coin: float = 0.0
    start_value_usd: float = 0.0
    end_value_usd: float = 0.0
    fees_usd: float = 0.0
    slippage_usd: float = 0.0
    funding_usd: float = 0.0  # funding the simulated exchange charged (negative: received)
    orders: int = 0
    fills: int = 0
    rejects: int = 0
    decisions: int = 0
    stale_halts: int = 0  # gaps in the data longer than engine.stale_after_s: halted as stale
    ticks_in_band: int = 0
    ticks_decided: int = 0
    max_abs_delta_coin: float = 0.0
    max_abs_drift: float = 0.0  # |delta - target| in the hedge's unit
    price_start: float = 0.0
    price_end: float = 0.0
    attribution: Attribution = field(default_factory=Attribution)
    # end of path: 1-day 99% VaR/CVaR and the worst scenario cell per underlying and "total"
    # (bot/hedger/riskview.py; null VaR when the path is shorter than var_min_samples samples)
    risk: dict[str, Any] = field(default_factory=dict)
    series: Series = field(default_factory=Series)  # for the picture; not in report.json
    # each cross-hedged underlying's per-tick P&L sums (bot/backtest/cross_stats.py)
    cross: dict[str, cross_stats.CrossStats] = field(default_factory=dict)

    @property
    def share_in_band(self) -> float:
        return self.ticks_in_band / self.ticks_decided if self.ticks_decided else 0.0


def run_path(
    settings: Settings,
    spec: PathSpec,
    on_tick: Callable[[int], None] | None = None,
    events: Path | None = None,
    detail: bool = True,
) -> PathResult:
    """Run one seeded path to completion on a fresh virtual loop; with `events`, every event
    goes to that file as a JSON line. `detail`: P&L attribution and the picture's series (a
    greeks snapshot per tick; a sweep goes without). It only reads: decisions are the same."""
    sink = EventsFile(events) if events is not None else None
    try:
        return run_virtual(lambda: _run(settings, spec, on_tick, sink, detail))
    finally:
        if sink is not None:
            sink.close()


def path_settings(settings: Settings, seed: int) -> Settings:
    """The run's settings: this path's seed; nothing persisted, no journal, no kill file."""
    sim = settings.sim.model_copy(update={"seed": seed, "state_file": None})
    risk = settings.risk.model_copy(update={"halt_file": None})
    return settings.model_copy(update={"sim": sim, "risk": risk})


def replay_settings(settings: Settings, data: Recorded, start_ms: int) -> Settings:
    """The sim's starting prices are the recorded ones at the start."""
    und = {
        u: x.model_copy(update={"price": data.at(u, start_ms)[0]})
        for u, x in settings.sim.underlyings.items()
    }
    sim = settings.sim.model_copy(update={"underlyings": und})
    return settings.model_copy(update={"sim": sim})


async def _run(
    settings: Settings,
    spec: PathSpec,
    on_tick: Callable[[int], None] | None,
    sink: EventsFile | None,
    detail: bool,
) -> PathResult:
    settings = path_settings(settings, spec.seed)
    if spec.data is not None:
        settings = replay_settings(settings, spec.data, spec.start_ms)
    clock = VirtualClock(spec.start_ms)
    counter = iter(range(1, 2**62))
    venues: dict[str, SimVenue] = {
        name: SimVenue(
            name,
            settings.sim.for_account(name),
            [p for p in settings.positions if p.account == name],
            clock,
            run_market=False,
        )
        for name in settings.accounts
    }
    if spec.data is not None:
        vols = {u: x.vol for u, x in settings.sim.underlyings.items()}
        for v in venues.values():
            v.exchange.use_model(ReplayModel(spec.data, vols))
    catalog: dict[LineKey, Instrument] = {}
    recorder = Recorder(catalog)
    loop = asyncio.get_running_loop()
    scheduled = {"decide": False}

    def decide_soon() -> None:
        # As the daemon's decision loop: whatever marks an underlying dirty (a fill, a settled
        # order, a timer) gets a decision right after, not only at the next tick.
        if not scheduled["decide"]:
            scheduled["decide"] = True
            loop.call_soon(decide)

    def decide() -> None:
        scheduled["decide"] = False
        hedger.decide_dirty()

    hedger = Hedger(
        settings,
        venues,
        catalog,
        clock,
        EventBus(recorder, *([sink] if sink is not None else [])),
        None,
        wake=decide_soon,
        unique_ids=lambda: f"{next(counter):024d}",
    )
    for name, venue in venues.items():
        await venue.connect()
        for symbol, ins in (await venue.load_instruments()).items():
            catalog[(name, symbol)] = ins
    hedge_lines = hedger.add_hedge_lines()
    positions = PositionWatch(venues, hedger, 0, lambda: None)
    await Reconciler(venues, hedger, positions, clock, None).reconcile(initial=True)
    funding = FundingWatch(venues, hedger, clock)  # routing candidates' rates, as the daemon
    funding_every_ms = int(settings.routing.funding_refresh_s * 1000)
    funding_at = spec.start_ms
    await funding.refresh()
    pumps = [asyncio.ensure_future(_pump(name, v, hedger)) for name, v in venues.items()]
    recorder.index = lambda u: _index(venues, u)

    result = PathResult(seed=spec.seed)
    underlyings = sorted(settings.hedge)
    ref = underlyings[0]
    result.start_value_usd = _value(venues)
    result.price_start = _index(venues, ref)
    start_coin = result.start_value_usd / result.price_start
    start = {u: _index(venues, u) for u in underlyings}
    times = spec.ticks()
    # Recorded data arrives when the file says: a long gap is stale data, as live. A synthetic
    # market is quoted all along; --tick-ms only says how often the path looks at it.
    limit_ms = int(settings.engine.stale_after_s * 1000)
    stale = stale_checks(times, spec.start_ms, limit_ms) if spec.data is not None else {}
    result.series = Series.for_ticks(len(times))
    t = spec.start_ms
    parts = PathParts(
        hedger,
        venues,
        clock,
        recorder,
        hedge_lines,
        underlyings,
        spec.start_ms,
        spec.tick_ms,
        detail,
    )
    ff = FastForward(parts) if _can_fast_forward(settings, spec) else None
    try:
        i = 0
        while i < len(times):
            if ff is not None:
                t = ff.run(t, times[-1], result, on_tick)
                i = (t - spec.start_ms) // spec.tick_ms  # a grid: times[i] is the tick after t
                if i >= len(times):
                    break
            tick = times[i]
            i += 1
            if tick in stale:
                await _look_stale(clock, hedger, underlyings, stale[tick], result)
            dt_ms, t = tick - t, tick
            await clock.advance_to(t)
            # The book as it is held when the market moves (fills so far, not orders in flight).
            held = {u: ticks.held(hedger, u) for u in underlyings} if detail else {}
            crossed = cross_stats.before(hedger) if detail else {}
            for venue in venues.values():
                venue.tick()
            if t - funding_at >= funding_every_ms:
                funding_at = t
                await funding.refresh()
            ticks.feed(hedger, venues, hedge_lines)
            cross_stats.after(result.cross, hedger, crossed)
            if result.ticks == 0 and detail:
                ticks.first_move(result.attribution, hedger, underlyings, start, dt_ms)
            else:
                ticks.attribute(result.attribution, hedger, held, dt_ms)
            hedger.decide_dirty()
            ticks.note(result, hedger, underlyings)
            result.ticks += 1
            if detail and result.series.wants(result.ticks):
                ticks.sample(result, hedger, recorder, ref, (t - spec.start_ms) / 3_600_000)
            if on_tick is not None:
                on_tick(result.ticks)
        # Let what is in flight settle before the books are closed.
        await clock.advance_to(t + int(settings.execution.order_timeout_s * 2000))
        hedger.riskview.run(force=True)  # the risk the hedge leaves at the end of the path
        hedger.riskview.stop()
        result.risk = hedger.riskview.brief()
    finally:
        for task in pumps:
            task.cancel()
        await asyncio.gather(*pumps, return_exceptions=True)
        await hedger.executor.close()
        for venue in venues.values():
            await venue.close()
    result.end_value_usd = _value(venues)
    result.price_end = _index(venues, ref)
    result.pnl_usd = result.end_value_usd - result.start_value_usd
    result.pnl_coin = result.end_value_usd / result.price_end - start_coin
    recorder.fill_into(result)
    result.funding_usd = sum(v.exchange.funding_paid_usd for v in venues.values())
    result.attribution.close(
        result.pnl_usd, result.fees_usd, result.slippage_usd, result.funding_usd
    )
    return result


def _can_fast_forward(settings: Settings, spec: PathSpec) -> bool:
    """Quiet ticks are stepped over on a synthetic market with the corridor on. Not for a
    replay (its times and gaps are the file's), cross hedges (their statistics need every
    tick) or routing (candidates' funding is re-read on a timer the span would step over)."""
    eng = settings.engine
    return (
        eng.fast_forward
        and eng.corridor
        and spec.data is None
        and all(h.cross is None and not h.candidates for h in settings.hedge.values())
    )


async def _look_stale(
    clock: VirtualClock, hedger: Hedger, underlyings: list[str], at_ms: int, result: PathResult
) -> None:
    """A gap in the data: as the daemon's heartbeat, decide once the data is stale (a halt,
    the trading.halted event; the next tick's fresh data resumes trading)."""
    await clock.advance_to(at_ms)
    hedger.mark_all_dirty()
    hedger.decide_dirty()
    result.stale_halts += any(
        (d := hedger.last_decision.get(u)) is not None and d.reason == "stale_market_data"
        for u in underlyings
    )


async def _pump(name: str, venue: Venue, hedger: Hedger) -> None:
    """Order updates and fills to the hedger as the venue publishes them."""

    async def orders() -> None:
        while True:
            hedger.on_orders(name, await venue.watch_orders())

    async def fills() -> None:
        while True:
            hedger.on_fills(name, await venue.watch_fills())

    await asyncio.gather(orders(), fills())


def _index(venues: dict[str, SimVenue], underlying: str) -> float:
    for v in venues.values():
        price = v.exchange.market.prices.get(underlying)
        if price is not None:
            return price
    return math.nan


def _value(venues: dict[str, SimVenue]) -> float:
    total = 0.0
    for v in venues.values():
        ex = v.exchange
        marks = {
            s: ex.fair(s).mark
            for s, i in ex.instruments.items()
            if i.kind is Kind.OPTION and s not in ex.expired
        }
        total += value_usd(ex.ledger, ex.instruments, ex.market.prices, marks)
    return total
