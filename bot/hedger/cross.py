"""Cross hedges: an underlying's USD delta carried by other underlyings' hedges, through
minimum-variance betas estimated from the price feeds (`[hedge.<U>.cross]`, README "Cross
hedges").

Synchronous, clock passed in. The estimate (bot/core/beta.py) is fed with joint samples of the
underlyings' index prices every `sample_s`: a sample is taken at a decision once every name
has a price stamped at or after the sample time, so a tick's prices are sampled together.

A cross-hedged underlying U never trades its own instrument while its beta holds; its USD delta
D maps onto each proxy P as beta_P x D / price_P coin, added to P's exposure (like a position
held elsewhere), so P's own policy, band and instrument carry it, counted once. Its state:
- warmup: fewer than `min_samples` returns: U's share stays what it was (nothing at first;
  after a restart or a changed [hedge.U.cross], what the proxies carried) and U does not
  trade: no order is sized from a short history, whatever `on_breakdown` says;
- active: corr >= corr_floor: mapped with the current beta;
- breakdown: corr < corr_floor (alert `cross.breakdown`), then by `on_breakdown`: "halt"
  freezes U's share of the proxies' hedges in proxy coin (nothing trades because of U),
  "direct" maps nothing and U trades its own instrument, "keep" maps with the last beta that
  held. Back above the floor: `cross.recovered`.
While U's own data is halted (stale feed, pause, ...) its share is frozen as in "halt".
At start, each share is restored from the journal (`restore`): what the proxy's latest trade
was sized to carry. The warmup then holds it instead of unwinding the proxies' hedges because
the estimate's history was lost with the restart.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.config import Settings
from bot.core import beta as bt
from bot.cross_config import CrossConfig
from bot.hedger.view import MarketView

Emit = Callable[..., None]


@dataclass(slots=True)
class _Estimate:
    cfg: CrossConfig
    names: tuple[str, ...]  # U, then its proxies
    spec: bt.Spec
    moments: bt.Moments
    last: list[float] | None = None  # prices of the last sample
    next_ms: int = 0
    fit: bt.Fit | None = None
    status: str = "warmup"  # warmup | active | breakdown
    good_beta: bt.FloatArray | None = None
    mapped: dict[str, float] = field(default_factory=dict)  # proxy -> coin, last applied


def _estimate_for(u: str, cfg: CrossConfig) -> _Estimate:
    names = (u, *cfg.proxies)
    spec = bt.Spec(window=cfg.effective_window, half_life=cfg.half_life)
    return _Estimate(cfg, names, spec, bt.start(spec, len(names)))


class CrossHedges:
    def __init__(
        self,
        settings: Callable[[], Settings],
        view: MarketView,
        halted: Callable[[str], bool],
        emit: Emit,
    ) -> None:
        self._settings = settings
        self._view = view
        self._halted = halted
        self._emit = emit
        self._est: dict[str, _Estimate] = {}
        self._seen: Settings | None = None  # the settings _est was checked against

    # ---- which underlyings -------------------------------------------------------------------

    def _current(self) -> dict[str, _Estimate]:
        """One estimate per cross-hedged underlying; a changed [hedge.U.cross] starts afresh."""
        settings = self._settings()
        if settings is self._seen:
            return self._est  # settings are frozen: the same object, the same answer
        self._seen = settings
        hedge = settings.hedge
        crossed = {u: h.cross for u, h in hedge.items() if h.cross is not None}
        for u in [u for u in self._est if u not in crossed]:
            del self._est[u]
        for u, cfg in crossed.items():
            est = self._est.get(u)
            if est is None or est.cfg != cfg:
                fresh = self._est[u] = _estimate_for(u, cfg)
                if est is not None:  # the new warmup holds the share the proxies carry
                    kept = set(cfg.proxies)
                    fresh.mapped = {p: c for p, c in est.mapped.items() if p in kept}
        return self._est

    def involves(self, underlying: str) -> bool:
        """Cross-hedged, or carrying a cross hedge (its exposure moves with other prices)."""
        return any(underlying in e.names for e in self._current().values())

    def proxies_of(self, underlyings: set[str]) -> set[str]:
        """Proxies whose exposure moves when these underlyings' does."""
        est = self._current()
        return {p for u in underlyings if u in est for p in est[u].names[1:]}

    def restore(self, decisions: Iterable[Mapping[str, Any]]) -> None:
        """Each share as the proxies' latest journaled trades carried it (`carries_coin`)."""
        est = self._current()
        carried: dict[str, dict[str, float]] = {}  # proxy -> U -> coin, latest trade wins
        for row in decisions:
            if row.get("action") != "trade":
                continue
            detail = row.get("json")
            try:
                data = json.loads(detail) if isinstance(detail, str) else detail
            except ValueError:
                continue  # an unreadable row restores nothing; it must not stop the start
            if not isinstance(data, dict):
                continue
            cross = data.get("cross")
            if isinstance(cross, dict) and isinstance(cross.get("carries_coin"), dict):
                carried[str(row.get("underlying"))] = {
                    str(u): float(c)
                    for u, c in cross["carries_coin"].items()
                    if isinstance(c, int | float) and math.isfinite(c)
                }
        for u, e in est.items():
            e.mapped = {p: carried[p][u] for p in e.names[1:] if u in carried.get(p, {})}
            if e.mapped:
                self._emit("state", "cross.restored", underlying=u, mapped_coin=dict(e.mapped))

    # ---- sampling ----------------------------------------------------------------------------

    def sample(self) -> None:
        """Take the due joint sample of every estimate (called before each round of decisions)."""
        for u, est in self._current().items():
            seen = [self._view.market(n) for n in est.names]
            if any(m is None for m in seen):
                continue
            prices = [m.index for m in seen if m is not None]
            ts = min(m.ts_ms for m in seen if m is not None)
            if ts < est.next_ms:
                continue
            step_ms = max(int(est.cfg.sample_s * 1000), 1)
            est.next_ms = (ts // step_ms + 1) * step_ms
            if est.last is not None:
                r = bt.log_returns(est.last, prices)
                if r is not None:
                    est.moments = bt.update(est.spec, est.moments, r)
                    self._refit(u, est)
            est.last = prices

    def _refit(self, u: str, est: _Estimate) -> None:
        n = est.moments.count
        samples = min(n, est.spec.window) if est.spec.window is not None else n
        cov = bt.covariance(est.spec, est.moments)
        est.fit = bt.regress(cov, 0, range(1, len(est.names)), samples)
        if samples < est.cfg.min_samples:
            return
        corr = float(est.fit.corr)
        ok = corr >= est.cfg.corr_floor
        before = est.status
        if ok:
            est.status = "active"
            est.good_beta = est.fit.beta.copy()
            if before != "active":
                name = "cross.ready" if before == "warmup" else "cross.recovered"
                self._emit("state", name, **self._brief(u, est))
        elif before != "breakdown":
            est.status = "breakdown"
            self._emit(
                "alert",
                "cross.breakdown",
                **self._brief(u, est),
                corr_floor=est.cfg.corr_floor,
                response=est.cfg.on_breakdown,
            )

    # ---- mapping -----------------------------------------------------------------------------

    def trades_directly(self, u: str) -> bool:
        est = self._current().get(u)
        return est is not None and est.cfg.on_breakdown == "direct" and est.status == "breakdown"

    def hold_reason(self, u: str) -> str | None:
        """Why U's own instrument does not trade (None: it does, as a direct hedge)."""
        est = self._current().get(u)
        if est is None or self.trades_directly(u):
            return None
        return "cross_hedged" if est.status == "active" else f"cross_{est.status}"

    def coin_onto(self, proxy: str) -> float:
        """Coin delta the cross-hedged underlyings put on `proxy` now."""
        total = 0.0
        for u, est in self._current().items():
            if proxy in est.names[1:]:
                total += self._mapped(u, est).get(proxy, 0.0)
        return total

    def _mapped(self, u: str, est: _Estimate) -> dict[str, float]:
        if self.trades_directly(u):
            est.mapped = {}
            return est.mapped
        beta = self._beta_in_use(est)
        if beta is None or self._halted(u):
            return est.mapped  # frozen (warmup: nothing yet)
        exp = self._view.exposure(u)
        if exp is None:
            return est.mapped
        out = {}
        for p, b in zip(est.names[1:], beta.tolist(), strict=True):
            mkt = self._view.market(p)
            if mkt is None or not math.isfinite(b):
                return est.mapped
            out[p] = b * exp.delta_usd / mkt.index
        est.mapped = out
        return out

    @staticmethod
    def _beta_in_use(est: _Estimate) -> bt.FloatArray | None:
        if est.status == "active":
            return est.good_beta
        if est.status == "breakdown" and est.cfg.on_breakdown == "keep":
            return est.good_beta
        return None

    # ---- reporting ---------------------------------------------------------------------------

    def _brief(self, u: str, est: _Estimate) -> dict[str, Any]:
        fit = est.fit
        return {
            "underlying": u,
            "status": est.status,
            "proxies": list(est.names[1:]),
            "beta": _per_proxy(est, fit.beta.tolist()) if fit is not None else None,
            "corr": float(fit.corr) if fit is not None else None,
            "residual_std": float(fit.resid_std) if fit is not None else None,
            "samples": fit.samples if fit is not None else 0,
            "min_samples": est.cfg.min_samples,
        }

    def report(self, u: str) -> dict[str, Any] | None:
        """U's estimate and what it maps (cross-hedged U), or what U carries (a proxy)."""
        est = self._current()
        if u in est:
            e = est[u]
            beta = self._beta_in_use(e)
            return {
                **self._brief(u, e),
                "beta_used": _per_proxy(e, beta.tolist()) if beta is not None else None,
                "mapped_coin": dict(e.mapped),
                "on_breakdown": e.cfg.on_breakdown,
            }
        carried = {v: x.mapped.get(u, 0.0) for v, x in est.items() if u in x.names[1:]}
        return {"carries_coin": carried} if carried else None

    def mapped_coin(self, u: str) -> dict[str, float]:
        est = self._current().get(u)
        return dict(est.mapped) if est is not None else {}


def _per_proxy(est: _Estimate, values: list[float]) -> dict[str, float]:
    return dict(zip(est.names[1:], values, strict=True))
