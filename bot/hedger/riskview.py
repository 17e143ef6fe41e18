"""The risk the hedge leaves, kept current on a clock timer (bot/core/scenarios.py does the math).

Every `period_s` (the smaller of risk.var_sample_s and RECOMPUTE_S, independent of the tick
rate) it samples the index when due and, if anything moved since the last computation (a new
sample, positions, the config, an index by 1%), revalues each underlying's
book on the scenario grid and on the recorded 1-day returns, and applies the VaR limit
(bot/core/risk.py apply_var). The cost is bounded: one vectorized pricing of grid plus history
per underlying, at most once a minute; without a VaR limit the pricing waits until the figures
are read (what it prices is taken when the computation is due, so the figures are the same).

History: the index of every hedged underlying is sampled at the same timer instants every
risk.var_sample_s; a ring of risk.var_window + 1 samples gives up to var_window returns, each
scaled to one day by the square root of its interval. The whole book sums the underlyings' P&L
over the instants where every underlying with a position has a return (same dates), so its VaR
counts the correlation the history shows.
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import numpy as np
import structlog

from bot.clock import Timer
from bot.core import risk, scenarios
from bot.core.book import exposure_of
from bot.core.scenarios import BookInputs, Grid

if TYPE_CHECKING:
    from bot.config import Settings
    from bot.config_execution import RiskConfig
    from bot.hedger.hedger import Hedger

log = structlog.get_logger("hedgebot.risk")

RECOMPUTE_S = 60.0  # the timer's period at most: a position change shows within a minute
MOVE_FRACTION = 0.01  # an index move that makes the numbers stale


@dataclass(frozen=True, slots=True)
class IdleBasis:
    """The last sample's ms (None: none yet), the sampling period (ms) and the index prices
    the last computation saw."""

    last_sample_ms: int | None
    period_ms: float
    seen: dict[str, float]


def moved(prices: dict[str, float], seen: dict[str, float]) -> bool:
    """Has an index moved by more than MOVE_FRACTION (or the set of underlyings changed)?"""
    if prices.keys() != seen.keys():
        return True
    return any(abs(p / seen[u] - 1.0) > MOVE_FRACTION for u, p in prices.items())


def idle(basis: IdleBasis, now: int, prices: dict[str, float]) -> bool:
    """A run at `now` with these prices would neither sample nor recompute."""
    last = basis.last_sample_ms
    due = bool(prices) and (last is None or now - last >= basis.period_ms)
    return not due and not moved(prices, basis.seen)


@dataclass(frozen=True, slots=True)
class _Seen:
    """What a computation reads, taken when it is due: the time, the risk settings, each
    underlying's book (None: no market data) and the index samples its 1-day returns come
    from (turned into returns only when priced)."""

    now: int
    cfg: RiskConfig
    books: dict[str, BookInputs | None]
    samples: tuple[tuple[int, dict[str, float]], ...]


class RiskView:
    def __init__(self, hedger: Hedger) -> None:
        self.h = hedger
        self.samples: deque[tuple[int, dict[str, float]]] = deque(maxlen=self._maxlen())
        self._report: dict[str, Any] = {}
        self._due: _Seen | None = None  # a computation's inputs, to price when read
        self._timer: Timer | None = None
        # what the last computation saw: (ms, ledger version, settings, index per underlying)
        self._basis: tuple[int, int, Settings, dict[str, float]] | None = None

    def _maxlen(self) -> int:
        return self.h.settings.risk.var_window + 1

    @property
    def period_s(self) -> float:
        return min(self.h.settings.risk.var_sample_s, RECOMPUTE_S)

    def start(self) -> None:
        """Arm the timer (idempotent); the first run is now."""
        if self._timer is None:
            self._timer = self.h.clock.call_later(0.0, self._tick)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _tick(self) -> None:
        self.run_safely()
        self._timer = self.h.clock.call_later(self.period_s, self._tick)

    def run_safely(self) -> None:
        """`run` as the timer makes it (a backtest's fast-forward makes the timer's runs)."""
        try:
            self.run()
        except Exception as e:
            # A bad revaluation must never stop the daemon: say so and keep the timer.
            log.exception("risk.failed", error=repr(e))
            self.h.emit("alert", "risk.failed", error=repr(e))

    def run(self, force: bool = False) -> None:
        now = self.h.clock.now_ms()
        if self.samples.maxlen != self._maxlen():
            self.samples = deque(self.samples, maxlen=self._maxlen())
        prices = {}
        for u in self.h.settings.hedge:
            mkt = self.h.view.market(u)
            if mkt is not None:
                prices[u] = mkt.index
        sampled = self._sample_due(now, prices)
        if sampled:
            self.samples.append((now, prices))
        if force or sampled or self._stale(now, prices):
            self._basis = (now, self.h.ledger.version, self.h.settings, prices)
            self.compute(now)

    def idle_basis(self) -> IdleBasis | None:
        """What decides whether a run at a given time and index prices would do nothing (no
        sample, no recomputation: `idle`), as of now; None when the next run recomputes
        whatever the prices (nothing computed yet, positions, config or the ring's size
        changed). A backtest's fast-forward then only moves the timer (reschedule)."""
        if self.samples.maxlen != self._maxlen() or self._basis is None:
            return None
        _, version, settings, seen = self._basis
        if version != self.h.ledger.version or settings is not self.h.settings:
            return None
        last = self.samples[-1][0] if self.samples else None
        return IdleBasis(last, self.h.settings.risk.var_sample_s * 1000, seen)

    @property
    def timer(self) -> Timer | None:
        return self._timer

    def reschedule(self, when_s: float) -> None:
        """Next run at loop time `when_s`, as if the runs before it had found nothing to do."""
        self.stop()
        self._timer = asyncio.get_running_loop().call_at(when_s, self._tick)

    def _sample_due(self, now: int, prices: dict[str, float]) -> bool:
        period_ms = self.h.settings.risk.var_sample_s * 1000
        return bool(prices) and (not self.samples or now - self.samples[-1][0] >= period_ms)

    def _stale(self, now: int, prices: dict[str, float]) -> bool:
        """Recompute only when something moved: positions (the ledger), the config, an index by
        more than MOVE_FRACTION; a new sample (every var_sample_s) also recomputes, which bounds
        how old IVs and external positions can be in the numbers."""
        if self._basis is None:
            return True
        _, version, settings, seen = self._basis
        if version != self.h.ledger.version or settings is not self.h.settings:
            return True
        return moved(prices, seen)

    def book(self, underlying: str) -> BookInputs | None:
        seen = self.h.view.snapshot(underlying)
        if seen is None:
            return None
        exp = seen[0]
        cols, qty, iv, rate = self.h.view.inputs_of(underlying)
        now = self.h.clock.now_ms()
        zero = np.zeros(len(cols.keys))
        lines = exposure_of(
            cols, qty, zero, exp.price, iv, rate, now, self.h.settings.engine.hedge_view
        )
        # Coin held outside the lines (equity, external deltas): what the exposure counts beyond
        # our lines, less a venue-greeks shift (the options are revalued by our own model).
        extra = exp.delta_coin - lines.delta_coin - self.h.view.greeks.shift(underlying)
        if self.h.settings.engine.hedge_view == "coin":
            # the coin view leaves held coin alone: the book is what its delta counts
            qty = np.where(cols.is_spot, 0.0, qty)
        return BookInputs(cols, qty, iv, exp.price, rate, now, extra)

    @property
    def report(self) -> dict[str, Any]:
        """The last computation's figures. Without a VaR limit nothing acts on them, so they
        are priced when first read (a backtest reads them once, at the end), from what the
        computation saw when it was due; a pricing that fails then is reported then."""
        due, self._due = self._due, None
        if due is not None:
            try:
                self._report = self._price(due)
            except Exception as e:
                log.exception("risk.failed", error=repr(e))
                self.h.emit("alert", "risk.failed", error=repr(e))
        return self._report

    def compute(self, now: int) -> None:
        cfg = self.h.settings.risk
        books: dict[str, BookInputs | None] = {}
        for u in sorted(self.h.settings.hedge):
            b = self.book(u)
            if b is not None:
                b = replace(b, iv=b.iv.copy())  # the view updates its IVs in place
            books[u] = b
        seen = _Seen(now, cfg, books, tuple(self.samples))
        if cfg.var_limit_usd is None:
            self._due = seen
            return
        self._due = None
        self._report = self._price(seen)
        self._limit(self._report["total"]["var_99_usd"])

    @staticmethod
    def _price(seen: _Seen) -> dict[str, Any]:
        """Each underlying's scenario grid, history P&L and VaR, and the whole book's."""
        cfg = seen.cfg
        per: dict[str, dict[str, Any]] = {}
        pnls: dict[str, dict[int, float]] = {}
        total_grid: Grid | None = scenarios.zero_grid(cfg.scenario_spot_pct, cfg.scenario_iv_points)
        for u, b in seen.books.items():
            entry: dict[str, Any] = {
                "scenarios": None,
                "var_99_usd": None,
                "cvar_99_usd": None,
                "samples": 0,
                "error": None,
            }
            per[u] = entry
            if b is None:
                entry["error"] = "no_market_data"
                total_grid = None
                continue
            rets = returns(seen.samples, u)
            try:
                base = scenarios.base_usd(b)  # both P&Ls count from it: priced once
                spot_pct, iv_points = cfg.scenario_spot_pct, cfg.scenario_iv_points
                grid = scenarios.scenario_grid(b, spot_pct, iv_points, base)
                entry["scenarios"] = grid.as_dict()
                if total_grid is not None:
                    total_grid = total_grid.plus(grid)
                entry["samples"] = len(rets)
                pnl = scenarios.historical_pnl(b, list(rets.values()), base) if rets else None
                if not b.empty:
                    # a position with no history yet leaves the whole book without a VaR
                    pnls[u] = {} if pnl is None else dict(zip(rets, pnl.tolist(), strict=True))
                if pnl is not None and len(rets) >= cfg.var_min_samples:
                    entry["var_99_usd"], entry["cvar_99_usd"] = scenarios.var_cvar(pnl)
            except scenarios.MissingIV as e:
                entry["error"] = str(e)
                total_grid = None
        total = RiskView._total(pnls, total_grid, cfg.var_min_samples, per)
        return {"underlyings": per, "total": total, "ts_ms": seen.now}

    @staticmethod
    def _total(
        pnls: dict[str, dict[int, float]],
        grid: Grid | None,
        min_samples: int,
        per: dict[str, dict[str, Any]],
    ) -> dict[str, Any]:
        """The whole book: no numbers while any underlying cannot be valued."""
        failed = any(e["error"] for e in per.values())
        out: dict[str, Any] = {
            "scenarios": None if grid is None or failed else grid.as_dict(),
            "var_99_usd": None,
            "cvar_99_usd": None,
            "samples": 0,
        }
        if failed:
            return out
        if not pnls:
            # No position anywhere: the book cannot lose, once there is history to say so.
            n = max((e["samples"] for e in per.values()), default=0)
            out["samples"] = n
            if n >= min_samples:
                out["var_99_usd"] = out["cvar_99_usd"] = 0.0
            return out
        common = set.intersection(*(set(p) for p in pnls.values()))
        summed = [sum(p[t] for p in pnls.values()) for t in sorted(common)]
        out["samples"] = len(summed)
        if len(summed) >= min_samples:
            out["var_99_usd"], out["cvar_99_usd"] = scenarios.var_cvar(summed)
        return out

    def brief(self) -> dict[str, Any]:
        """VaR, CVaR, samples and the worst grid cell per underlying and `total` (summaries)."""
        rows = dict(self.report.get("underlyings", {}))
        if "total" in self.report:
            rows["total"] = self.report["total"]
        out: dict[str, Any] = {}
        for name, r in rows.items():
            grid = r.get("scenarios")
            out[name] = {
                "var_99_usd": r.get("var_99_usd"),
                "cvar_99_usd": r.get("cvar_99_usd"),
                "samples": r.get("samples"),
                "worst": None if grid is None else grid["worst"],
            }
        return out

    def _limit(self, var_usd: float | None) -> None:
        before = self.h.risk.state
        after = risk.apply_var(before, var_usd, self.h.settings.risk.var_limit_usd)
        if after is before:
            return
        self.h.risk.state = after
        log.warning(
            "risk.var_limit",
            var_usd=var_usd,
            limit_usd=self.h.settings.risk.var_limit_usd,
            state=after.trading_state.value,
        )
        self.h.emit(
            "state",
            "trading.state",
            state=after.trading_state.value,
            before=before.trading_state.value,
            reason=after.state_reason,
            var_usd=var_usd,
            limit_usd=self.h.settings.risk.var_limit_usd,
        )


def returns(samples: Sequence[tuple[int, dict[str, float]]], underlying: str) -> dict[int, float]:
    """Sample time -> 1-day return of `underlying` ending at that sample."""
    out: dict[int, float] = {}
    for j in range(1, len(samples)):
        (t0, p0), (t1, p1) = samples[j - 1], samples[j]
        if underlying in p0 and underlying in p1 and t1 > t0:
            out[t1] = scenarios.daily_return(p0[underlying], p1[underlying], (t1 - t0) / 1000)
    return out
