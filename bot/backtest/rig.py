"""A backtest path's running parts, wired as the daemon wires them: the simulated venues on a
virtual clock, the hedger with its decision loop, the initial reconciliation, the routing
candidates' funding rates, and the pumps that bring order updates and fills to the hedger as
the venues publish them (a websocket that never drops). Nothing touches the network, a
journal or MQTT.
"""

from __future__ import annotations

import asyncio
import math
from dataclasses import dataclass

from bot.backtest.data import Recorded
from bot.backtest.recorder import EventsFile, Recorder
from bot.backtest.valuation import value_usd
from bot.clock import VirtualClock
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


@dataclass(slots=True)
class Rig:
    clock: VirtualClock
    venues: dict[str, SimVenue]
    recorder: Recorder
    hedger: Hedger
    hedge_lines: list[LineKey]
    funding: FundingWatch
    funding_every_ms: int
    funding_at: int  # when the routing candidates' funding rates were last read
    pumps: list[asyncio.Task[None]]

    @classmethod
    async def start(
        cls, settings: Settings, start_ms: int, data: Recorded | None, sink: EventsFile | None
    ) -> Rig:
        """Venues connected, instruments loaded, positions reconciled, funding read."""
        clock = VirtualClock(start_ms)
        venues = _venues(settings, clock, data)
        catalog: dict[LineKey, Instrument] = {}
        recorder = Recorder(catalog)
        hedger = _hedger(settings, venues, catalog, clock, recorder, sink)
        for name, venue in venues.items():
            await venue.connect()
            for symbol, ins in (await venue.load_instruments()).items():
                catalog[(name, symbol)] = ins
        hedge_lines = hedger.add_hedge_lines()
        positions = PositionWatch(venues, hedger, 0, lambda: None)
        await Reconciler(venues, hedger, positions, clock, None).reconcile(initial=True)
        funding = FundingWatch(venues, hedger, clock)  # routing candidates' rates, as the daemon
        await funding.refresh()
        pumps = [asyncio.ensure_future(pump(name, v, hedger)) for name, v in venues.items()]
        recorder.index = lambda u: index(venues, u)
        every_ms = int(settings.routing.funding_refresh_s * 1000)
        return cls(clock, venues, recorder, hedger, hedge_lines, funding, every_ms, start_ms, pumps)

    async def refresh_funding(self, t: int) -> None:
        """The funding rates again when `funding_refresh_s` has passed, as the daemon's timer."""
        if t - self.funding_at >= self.funding_every_ms:
            self.funding_at = t
            await self.funding.refresh()

    async def close(self) -> None:
        for task in self.pumps:
            task.cancel()
        await asyncio.gather(*self.pumps, return_exceptions=True)
        await self.hedger.executor.close()
        for venue in self.venues.values():
            await venue.close()

    def index(self, underlying: str) -> float:
        return index(self.venues, underlying)

    def value_usd(self) -> float:
        """Every account's value at the index, options at their marks."""
        total = 0.0
        for v in self.venues.values():
            ex = v.exchange
            marks = {
                s: ex.fair(s).mark
                for s, i in ex.instruments.items()
                if i.kind is Kind.OPTION and s not in ex.expired
            }
            total += value_usd(ex.ledger, ex.instruments, ex.market.prices, marks)
        return total


def _venues(settings: Settings, clock: VirtualClock, data: Recorded | None) -> dict[str, SimVenue]:
    venues = {
        name: SimVenue(
            name,
            settings.sim.for_account(name),
            [p for p in settings.positions if p.account == name],
            clock,
            run_market=False,
        )
        for name in settings.accounts
    }
    if data is not None:
        vols = {u: x.vol for u, x in settings.sim.underlyings.items()}
        for v in venues.values():
            v.exchange.use_model(ReplayModel(data, vols))
    return venues


def _hedger(
    settings: Settings,
    venues: dict[str, SimVenue],
    catalog: dict[LineKey, Instrument],
    clock: VirtualClock,
    recorder: Recorder,
    sink: EventsFile | None,
) -> Hedger:
    loop = asyncio.get_running_loop()
    scheduled = {"decide": False}
    counter = iter(range(1, 2**62))

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
    return hedger


async def pump(name: str, venue: Venue, hedger: Hedger) -> None:
    """Order updates and fills to the hedger as the venue publishes them."""

    async def orders() -> None:
        while True:
            hedger.on_orders(name, await venue.watch_orders())

    async def fills() -> None:
        while True:
            hedger.on_fills(name, await venue.watch_fills())

    await asyncio.gather(orders(), fills())


def index(venues: dict[str, SimVenue], underlying: str) -> float:
    for v in venues.values():
        price = v.exchange.market.prices.get(underlying)
        if price is not None:
            return price
    return math.nan
