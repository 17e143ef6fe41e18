"""Trading on the venue's option deltas (engine.greeks_source): the real hedger on the simulated
venue's listing holds one option; its ticker carries the venue's delta. `own` trades on our
Black-Scholes delta, `venue` on the venue's (the shift is the difference, also what the risk
view takes off), `both` trades on ours and alerts once per crossing of the divergence rule; a
held option whose ticker lacks a venue delta halts `venue` trading."""

from __future__ import annotations

import pytest

from bot.clock import VirtualClock, run_virtual
from bot.config import Settings
from bot.core.book import LineKey, option_scalar
from bot.core.greeks import MS_PER_YEAR
from bot.core.instruments import Instrument, Kind
from bot.core.market import Ticker
from bot.core.orders import Fill, Side
from bot.events import EventBus
from bot.hedger.hedger import Hedger
from bot.venues.sim import SimVenue
from tests.helpers import Sink

START = 1_767_225_600_000
PERP = "BTC/USDT:USDT"
S = 60_000.0
IV = 0.6


def settings(source: str) -> Settings:
    return Settings(
        engine={
            "stale_after_s": 86_400,
            "greeks_source": source,
            "greeks_divergence_tol": 0.1,
            "greeks_divergence_min_coin": 0.01,
        },
        sim={"seed": 3},
        # lists the option on the simulated venue; the hedger's book is the fill below
        positions=[
            {
                "underlying": "BTC",
                "kind": "option",
                "settlement": "linear",
                "option_type": "call",
                "strike": 62_000,
                "expiry_days": 30,
                "qty": 2,
            }
        ],
        accounts={"sim": {"exchange": "sim"}},
        # a band no move reaches: nothing trades, the book is the one option bought
        hedge={"BTC": {"instrument": PERP, "policy": {"kind": "band", "band": 1000.0}}},
    )


class Rig:
    def __init__(self, source: str) -> None:
        self.clock = VirtualClock(START)
        self.s = settings(source)
        self.venue = SimVenue("sim", self.s.sim, self.s.positions, self.clock, run_market=False)
        self.catalog: dict[LineKey, Instrument] = {}
        self.sink = Sink()
        self.hedger = Hedger(
            self.s, {"sim": self.venue}, self.catalog, self.clock, EventBus(self.sink)
        )

    async def start(self) -> Instrument:
        await self.venue.connect()
        for symbol, ins in (await self.venue.load_instruments()).items():
            self.catalog[("sim", symbol)] = ins
        self.hedger.add_hedge_lines()
        # a linear BTC call, so our delta is plain Black-Scholes
        option = next(
            i
            for i in self.catalog.values()
            if i.underlying == "BTC" and i.kind is Kind.OPTION and not i.is_inverse
        )
        fill = Fill("x", option.symbol, Side.BUY, 2.0, 100.0, 0.0, "USDT", START, "t1")
        self.hedger.on_fills("sim", [fill])
        return option

    def tick(self, option: Instrument, venue_delta: float | None) -> None:
        now = self.clock.now_ms()
        self.hedger.on_ticker("sim", Ticker(PERP, now, S - 1, S + 1, S, S, S))
        t = Ticker(option.symbol, now, 99.0, 101.0, 100.0, 100.0, S, IV, venue_delta)
        self.hedger.on_ticker("sim", t)
        self.hedger.decide_dirty()


def own_delta(option: Instrument) -> float:
    assert option.strike is not None and option.expiry_ms is not None
    t = (option.expiry_ms - START) / MS_PER_YEAR
    call = option.option_type is not None and option.option_type.value == "call"
    d = option_scalar(S, option.strike, t, 0.0, IV, call, False)[0]
    return 2.0 * d * option.contract_size


def run(source: str, venue_deltas: list[float | None]) -> tuple[Rig, list[float], float]:
    async def main() -> tuple[Rig, list[float], float]:
        rig = Rig(source)
        option = await rig.start()
        seen = []
        for vd in venue_deltas:
            rig.tick(option, vd)
            exp = rig.hedger.view.exposure("BTC")
            assert exp is not None
            seen.append(exp.delta_coin)
        mine = own_delta(option)
        await rig.venue.close()
        return rig, seen, mine

    return run_virtual(main)


def test_own_greeks_ignore_the_venue_delta() -> None:
    rig, seen, mine = run("own", [0.9])
    assert seen == [pytest.approx(mine, rel=1e-12)]
    assert rig.hedger.view.greeks.shift("BTC") == 0.0


def test_venue_greeks_trade_on_the_venue_delta() -> None:
    rig, seen, mine = run("venue", [0.9, 0.4])
    # the venue's delta is per contract, in coin: two contracts held
    assert seen == [pytest.approx(1.8), pytest.approx(0.8)]
    assert rig.hedger.view.greeks.shift("BTC") == pytest.approx(0.8 - mine)
    assert rig.hedger.halts.reason("BTC") is None


def test_venue_greeks_halt_when_a_held_option_has_no_venue_delta() -> None:
    rig, seen, mine = run("venue", [None])
    assert seen == [pytest.approx(mine)]  # counted at our own delta on both sides
    assert rig.hedger.halts.reason("BTC") == "no_venue_delta"
    assert rig.hedger.last_decision["BTC"].reason == "no_venue_delta"


def test_both_trades_on_own_and_alerts_once_per_crossing() -> None:
    _, _, mine = run("own", [0.0])
    agree = mine / 2.0  # per contract: the venue says what we say
    far = agree + 0.5  # 1 coin apart on 2 contracts: over 10% and over 0.01 coin
    rig, seen, mine = run("both", [agree, far, far, agree, far])
    assert seen == [pytest.approx(mine)] * 5
    crossings = [(e.kind, e.name) for e in rig.sink.events if e.name.startswith("greeks.")]
    assert crossings == [
        ("alert", "greeks.diverged"),
        ("state", "greeks.agree"),
        ("alert", "greeks.diverged"),
    ]
    alert = rig.sink.named("greeks.diverged")[0]
    assert alert["venue_delta_coin"] == pytest.approx(2 * far)
    assert alert["own_delta_coin"] == pytest.approx(mine)
