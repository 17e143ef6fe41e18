"""Each cross hedge's variance reduction in a backtest: 1 - var(hedged) / var(unhedged).

Per tick, for each cross-hedged underlying U held with USD delta D before the tick (in-flight
orders left out) and the coin m_P its beta mapped onto each proxy P then, with simple returns
r over the tick:

    unhedged = D x r_U        hedged = D x r_U - sum_P m_P x price_P x r_P

so it measures the cross hedge as the betas commanded it (the proxies' own band and execution
error shows in their drift, not here), over the ticks a cross hedge was held (not the warmup,
not while U is hedged directly). Sums are kept so paths pool exactly.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from bot.hedger.hedger import Hedger

# U -> (D in USD, {P: coin mapped}, {name: price}) as held before a tick
Before = dict[str, tuple[float, dict[str, float], dict[str, float]]]


@dataclass(slots=True)
class CrossStats:
    ticks: int = 0
    sum_u: float = 0.0
    sum_uu: float = 0.0
    sum_h: float = 0.0
    sum_hh: float = 0.0

    def add(self, unhedged: float, hedged: float) -> None:
        self.ticks += 1
        self.sum_u += unhedged
        self.sum_uu += unhedged * unhedged
        self.sum_h += hedged
        self.sum_hh += hedged * hedged


def _var(n: int, s: float, ss: float) -> float:
    return (ss - s * s / n) / (n - 1) if n > 1 else 0.0


def reduction(parts: Iterable[CrossStats]) -> dict[str, Any]:
    """Pooled over `parts` (paths): the variances of the per-tick P&L and the reduction."""
    ps = list(parts)
    n = sum(p.ticks for p in ps)
    var_u = _var(n, sum(p.sum_u for p in ps), sum(p.sum_uu for p in ps))
    var_h = _var(n, sum(p.sum_h for p in ps), sum(p.sum_hh for p in ps))
    return {
        "ticks": n,
        "var_unhedged_usd2": var_u,
        "var_hedged_usd2": var_h,
        "variance_reduction": 1.0 - var_h / var_u if var_u > 0 else None,
    }


def before(hedger: Hedger) -> Before:
    out: Before = {}
    for u, h in hedger.settings.hedge.items():
        if h.cross is None:
            continue
        exp = hedger.view.exposure(u)
        prices = _prices(hedger, (u, *h.cross.proxies))
        if exp is None or prices is None:
            continue
        mapped = hedger.cross.mapped_coin(u)
        if not mapped:
            continue  # no cross hedge held (warmup, or a direct hedge): not this figure's ticks
        held = (exp.delta_coin - exp.in_flight_coin) * exp.price
        out[u] = (held, mapped, prices)
    return out


def after(stats: dict[str, CrossStats], hedger: Hedger, held: Before) -> None:
    for u, (delta_usd, mapped, p0) in held.items():
        p1 = _prices(hedger, tuple(p0))
        if p1 is None:
            continue
        unhedged = delta_usd * (p1[u] / p0[u] - 1.0)
        hedge = sum(m * (p1[p] - p0[p]) for p, m in mapped.items())
        stats.setdefault(u, CrossStats()).add(unhedged, unhedged - hedge)


def _prices(hedger: Hedger, names: Iterable[str]) -> dict[str, float] | None:
    out = {}
    for n in names:
        m = hedger.view.market(n)
        if m is None:
            return None
        out[n] = m.index
    return out


def pooled(per_path: Iterable[Mapping[str, CrossStats]]) -> dict[str, Any]:
    by_u: dict[str, list[CrossStats]] = {}
    for path in per_path:
        for u, s in path.items():
            by_u.setdefault(u, []).append(s)
    return {u: reduction(parts) for u, parts in sorted(by_u.items())}
