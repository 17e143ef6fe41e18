"""The risk view in the real hedger on a virtual clock: history sampled on its timer, VaR by
hand, the VaR limit's hysteresis, and the numbers in the state document and the metrics."""

from __future__ import annotations

import itertools
import math

import pytest
from prometheus_client import generate_latest

from bot.clock import VirtualClock, run_virtual
from bot.config import Settings
from bot.core.book import LineKey
from bot.core.instruments import Instrument
from bot.core.market import Ticker
from bot.core.orders import Fill, Side
from bot.core.risk import TradingState
from bot.events import EventBus
from bot.hedger.hedger import Hedger
from bot.io.metrics import Metrics
from bot.operator import OperatorControls
from bot.venues.sim import SimVenue
from tests.helpers import Sink

START = 1_767_225_600_000
PERP = "BTC/USDT:USDT"
HOUR_MS = 3_600_000
# The index at each hourly sample: 11 returns, each scaled by sqrt(24) to a day.
PRICES = [60_000, 60_600, 59_400, 60_000, 61_200, 60_000, 60_300, 59_100, 60_000, 60_600, 60_000]
PRICES = [*PRICES, 60_000]  # the book is valued at 60 000


def settings(limit: float | None) -> Settings:
    return Settings(
        engine={"stale_after_s": 86_400},
        risk={
            "var_limit_usd": limit,
            "var_sample_s": 3600,
            "var_window": 20,
            "var_min_samples": 10,
            "scenario_spot_pct": [-10, 0, 10],
            "scenario_iv_points": [0],
        },
        sim={"seed": 3},
        accounts={"sim": {"exchange": "sim"}},
        # a band no move reaches: the hedger never trades, the book is what the fills make it
        hedge={"BTC": {"instrument": PERP, "policy": {"kind": "band", "band": 1000.0}}},
    )


def expected_var(qty_coin: float, s0: float) -> tuple[float, float]:
    rets = [math.log(b / a) * math.sqrt(24) for a, b in itertools.pairwise(PRICES)]
    losses = sorted((-qty_coin * s0 * (math.exp(r) - 1) for r in rets), reverse=True)
    # 11 scenarios: k = 11 - ceil(10.89) + 1 = 1, the worst loss
    return losses[0], losses[0]


class Rig:
    def __init__(self, limit: float | None) -> None:
        self.s = settings(limit)
        self.clock = VirtualClock(START)
        self.venue = SimVenue("sim", self.s.sim, [], self.clock, run_market=False)
        self.catalog: dict[LineKey, Instrument] = {}
        self.sink = Sink()
        self.hedger = Hedger(
            self.s, {"sim": self.venue}, self.catalog, self.clock, EventBus(self.sink)
        )

    async def start(self) -> None:
        await self.venue.connect()
        for symbol, ins in (await self.venue.load_instruments()).items():
            self.catalog[("sim", symbol)] = ins
        self.hedger.add_hedge_lines()

    def tick(self, price: float) -> None:
        now = self.clock.now_ms()
        t = Ticker(PERP, now, price - 1, price + 1, price, price, price)
        self.hedger.on_ticker("sim", t)
        self.hedger.decide_dirty()

    def fill(self, side: Side, amount: float, n: int) -> None:
        now = self.clock.now_ms()
        f = Fill("x", PERP, side, amount, 60_000.0, 0.0, "USDT", now, f"t{n}")
        self.hedger.on_fills("sim", [f])

    async def at(self, ms: int) -> None:
        await self.clock.advance_to(START + ms)


def test_var_limit_hysteresis_state_document_and_metrics() -> None:
    async def main() -> tuple[Rig, list[dict[str, object]], float]:
        rig = Rig(limit=None)
        await rig.start()
        size = rig.catalog[("sim", PERP)].contract_size
        rig.fill(Side.BUY, 2.0 / size, 1)  # 2 BTC long
        for i, p in enumerate(PRICES):
            await rig.at(i * HOUR_MS)
            rig.tick(p)
        await rig.at(len(PRICES) * HOUR_MS - HOUR_MS + 60_000)  # one recompute, no new sample
        report = rig.hedger.riskview.report
        var2 = report["total"]["var_99_usd"]
        want, want_cvar = expected_var(2.0, 60_000.0)
        assert var2 == pytest.approx(want, rel=1e-9)
        assert report["underlyings"]["BTC"]["cvar_99_usd"] == pytest.approx(want_cvar)
        assert report["underlyings"]["BTC"]["samples"] == len(PRICES) - 1
        # limit at 75% of the 2 BTC VaR: over it
        limit = 0.75 * var2
        rig.hedger.apply(settings(limit))
        await rig.at(len(PRICES) * HOUR_MS - HOUR_MS + 120_000)
        assert rig.hedger.risk.state.trading_state is TradingState.REDUCING_ONLY
        rig.fill(Side.SELL, 0.6 / size, 2)  # 1.4 BTC: VaR at 93% of the limit, stays
        await rig.at(len(PRICES) * HOUR_MS - HOUR_MS + 180_000)
        assert rig.hedger.risk.state.trading_state is TradingState.REDUCING_ONLY
        rig.fill(Side.SELL, 0.2 / size, 3)  # 1.2 BTC: 80% of the limit, below 90%: active
        await rig.at(len(PRICES) * HOUR_MS - HOUR_MS + 240_000)
        assert rig.hedger.risk.state.trading_state is TradingState.ACTIVE
        state = OperatorControls(rig.hedger, lambda k: None).state()
        rig.hedger.riskview.stop()
        await rig.venue.close()
        return rig, [state], limit

    rig, (state,), limit = run_virtual(main)
    flips = [(e["before"], e["state"], e["reason"]) for e in rig.sink.named("trading.state")]
    assert flips == [
        ("active", "reducing_only", "var_limit"),
        ("reducing_only", "active", "var_recovered"),
    ]
    risk = state["risk"]
    want, _ = expected_var(1.2, 60_000.0)
    assert risk["total"]["var_99_usd"] == pytest.approx(want, rel=1e-9) and want < 0.9 * limit
    grid = risk["underlyings"]["BTC"]["scenarios"]
    assert grid["pnl_usd"] == [pytest.approx([-7_200.0, 0.0, 7_200.0])]  # 1.2 BTC x 6000
    assert grid["worst"] == {"spot_pct": -10, "iv_points": 0, "pnl_usd": pytest.approx(-7_200.0)}
    m = Metrics("t")
    m.refresh(state)
    text = generate_latest(m.registry).decode()
    for gauge in ("hedgebot_var_usd", "hedgebot_cvar_usd"):
        for name in ("BTC", "total"):
            assert gauge_value(text, f'{gauge}{{underlying="{name}"}}') == pytest.approx(want)


def test_figures_read_later_are_those_of_the_computation() -> None:
    """Without a VaR limit the figures are priced when read: from the book, returns and IVs as
    they were when the computation was due, not as they are at the read."""

    async def main() -> tuple[dict[str, object], dict[str, object]]:
        rig = Rig(limit=None)
        await rig.start()
        size = rig.catalog[("sim", PERP)].contract_size
        rig.fill(Side.BUY, 2.0 / size, 1)
        for i, p in enumerate(PRICES):
            await rig.at(i * HOUR_MS)
            rig.tick(p)
        rv = rig.hedger.riskview
        later = rv.report  # priced now, from the last computation (the last sample's)
        rv.compute(rig.clock.now_ms())  # due again...
        rig.fill(Side.BUY, 3.0 / size, 2)  # ...then the book and the index move, unread
        rig.tick(66_000.0)
        read = rv.report
        rv.stop()
        await rig.venue.close()
        return later, read

    later, read = run_virtual(main)
    assert read == later  # the same inputs: the same figures, to the bit
    want, _ = expected_var(2.0, 60_000.0)
    assert read["total"]["var_99_usd"] == pytest.approx(want, rel=1e-9)  # type: ignore[index]


def gauge_value(text: str, series: str) -> float:
    line = next(x for x in text.splitlines() if x.startswith(series + " "))
    return float(line.split()[-1])


def test_var_config_rules_name_field_value_and_rule() -> None:
    from pydantic import ValidationError

    from bot.config import ConfigError
    from bot.config_set import with_setting

    s = settings(1000.0)
    assert with_setting(s, "risk.var_limit_usd", 500.0).risk.var_limit_usd == 500.0
    with pytest.raises(ConfigError, match=r"risk\.var_limit_usd.*only be lowered live"):
        with_setting(s, "risk.var_limit_usd", 2000.0)
    with pytest.raises(
        ValidationError, match=r"var_min_samples \(30\) must be <= var_window \(20\)"
    ):
        Settings(risk={"var_window": 20, "var_min_samples": 30})
    with pytest.raises(ValidationError, match=r"scenario_spot_pct.*\[-100\.0\]"):
        Settings(risk={"scenario_spot_pct": [-100.0]})
    with pytest.raises(ValidationError, match="var_limit_usd"):
        Settings(risk={"var_limit_usd": -1.0})
