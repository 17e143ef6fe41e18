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

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.backtest import cross_stats, ticks
from bot.backtest.attribution import Attribution
from bot.backtest.data import Recorded
from bot.backtest.fastforward import FastForward, PathParts
from bot.backtest.recorder import EventsFile
from bot.backtest.rig import Rig
from bot.backtest.schedule import DAY_MS, grid, stale_checks
from bot.backtest.series import Series
from bot.clock import VirtualClock, run_virtual
from bot.config import Settings
from bot.hedger.hedger import Hedger


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
    rig = await Rig.start(settings, spec.start_ms, spec.data, sink)
    result = PathResult(seed=spec.seed)
    underlyings = sorted(settings.hedge)
    result.start_value_usd = rig.value_usd()
    result.price_start = rig.index(underlyings[0])
    start_coin = result.start_value_usd / result.price_start
    try:
        t = await _ticks(rig, settings, spec, result, on_tick, detail)
        # Let what is in flight settle before the books are closed.
        await rig.clock.advance_to(t + int(settings.execution.order_timeout_s * 2000))
        riskview = rig.hedger.riskview
        riskview.run(force=True)  # the risk the hedge leaves at the end of the path
        riskview.stop()
        result.risk = riskview.brief()
    finally:
        await rig.close()
    result.end_value_usd = rig.value_usd()
    result.price_end = rig.index(underlyings[0])
    result.pnl_usd = result.end_value_usd - result.start_value_usd
    result.pnl_coin = result.end_value_usd / result.price_end - start_coin
    rig.recorder.fill_into(result)
    result.funding_usd = sum(v.exchange.funding_paid_usd for v in rig.venues.values())
    result.attribution.close(
        result.pnl_usd, result.fees_usd, result.slippage_usd, result.funding_usd
    )
    return result


async def _ticks(
    rig: Rig,
    settings: Settings,
    spec: PathSpec,
    result: PathResult,
    on_tick: Callable[[int], None] | None,
    detail: bool,
) -> int:
    """Every tick of the path, the quiet ones stepped over by the fast-forward; returns the
    last tick's time."""
    underlyings = sorted(settings.hedge)
    start = {u: rig.index(u) for u in underlyings}
    times = spec.ticks()
    # Recorded data arrives when the file says: a long gap is stale data, as live. A synthetic
    # market is quoted all along; --tick-ms only says how often the path looks at it.
    limit_ms = int(settings.engine.stale_after_s * 1000)
    stale = stale_checks(times, spec.start_ms, limit_ms) if spec.data is not None else {}
    result.series = Series.for_ticks(len(times))
    parts = PathParts(
        rig.hedger,
        rig.venues,
        rig.clock,
        rig.recorder,
        rig.hedge_lines,
        underlyings,
        spec.start_ms,
        spec.tick_ms,
        detail,
    )
    ff = FastForward(parts) if _can_fast_forward(settings, spec) else None
    t, i = spec.start_ms, 0
    while i < len(times):
        if ff is not None:
            # What the last tick left ready (a decision it already made) runs first, as the
            # next tick's wait would run it: the fast-forward needs the loop quiet.
            await rig.clock.sleep(0.0)
            t = ff.run(t, times[-1], result, on_tick)
            i = (t - spec.start_ms) // spec.tick_ms  # a grid: times[i] is the tick after t
            if i >= len(times):
                break
        tick = times[i]
        i += 1
        if tick in stale:
            await _look_stale(rig.clock, rig.hedger, underlyings, stale[tick], result)
        await _full_tick(parts, rig, tick, tick - t, start, result)
        t = tick
        if on_tick is not None:
            on_tick(result.ticks)
    return t


async def _full_tick(
    p: PathParts, rig: Rig, t: int, dt_ms: int, start: dict[str, float], result: PathResult
) -> None:
    """One tick through the whole path: the market moves (and fills resting orders), the
    hedger gets every line's ticker and the hedge lines' books, and decides."""
    hedger = p.hedger
    await p.clock.advance_to(t)
    # The book as it is held when the market moves (fills so far, not orders in flight).
    held = {u: ticks.held(hedger, u) for u in p.underlyings} if p.detail else {}
    crossed = cross_stats.before(hedger) if p.detail else {}
    for venue in p.venues.values():
        venue.tick()
    await rig.refresh_funding(t)
    ticks.feed(hedger, p.venues, p.hedge_lines)
    cross_stats.after(result.cross, hedger, crossed)
    if result.ticks == 0 and p.detail:
        ticks.first_move(result.attribution, hedger, p.underlyings, start, dt_ms)
    else:
        ticks.attribute(result.attribution, hedger, held, dt_ms)
    hedger.decide_dirty()
    ticks.note(result, hedger, p.underlyings)
    result.ticks += 1
    if p.detail and result.series.wants(result.ticks):
        hours = (t - p.start_ms) / 3_600_000
        ticks.sample(result, hedger, p.recorder, p.underlyings[0], hours)


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
