"""P&L attribution: why a path's hedged P&L is what it is, split into greeks, costs and a
residual. Pure.

Per tick, for each underlying, with the exposure the hedger computed after its previous decision
(`Hedger.exposure(u)`: the whole book, the hedge included), the move of the index from S to S'
(dS = S' - S), the time step dt (years) and the change of implied volatility dIV:

    delta P&L = delta_usd * dS / S            (= delta_coin * dS, USD)
    gamma P&L = 0.5 * gamma_coin * dS**2      (gamma_coin is coin per USD of S, so USD)
    theta P&L = theta_usd * dt                (theta_usd is USD per year)
    vega  P&L = vega_usd * dIV                (vega_usd is USD per 1.00 of volatility)

Costs are what the recorder measured: fees (USD), slippage (what fills paid beyond mid, USD)
and funding (what the simulated exchange charged the perps held). Each enters the sum with a
minus sign.

    residual = hedged P&L - (delta + gamma + theta + vega - fees - slippage - funding)

The residual holds what a second-order Taylor step misses (jumps, higher orders), what the
exposure does not see (held coin under hedge_view = "coin", expiries) and the first tick's move,
which has no previous exposure. On a smooth market with small steps it is small.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from bot.core.book import Exposure, FloatArray
from bot.core.spanbook import SpanGreeks

YEAR_MS = 365.0 * 86_400_000

PARTS = ("delta", "gamma", "theta", "vega", "fees", "slippage", "funding", "residual")


@dataclass(slots=True)
class Attribution:
    """Running sums over a path, in USD."""

    delta: float = 0.0
    gamma: float = 0.0
    theta: float = 0.0
    vega: float = 0.0
    fees: float = 0.0
    slippage: float = 0.0
    funding: float = 0.0
    residual: float = 0.0

    def step(self, before: Exposure, iv_before: float, price: float, iv: float, dt_ms: int) -> None:
        """One tick of one underlying: `before` as it stood, the market moved to `price`/`iv`."""
        s = before.price
        if not (s > 0 and math.isfinite(price)):
            return
        ds = price - s
        self.delta += before.delta_usd * ds / s
        self.gamma += 0.5 * before.gamma_coin * ds * ds
        self.theta += before.theta_usd * dt_ms / YEAR_MS
        if math.isfinite(iv) and math.isfinite(iv_before):
            self.vega += before.vega_usd * (iv - iv_before)

    def steps(
        self,
        s: FloatArray,
        price: FloatArray,
        before: SpanGreeks,
        iv_before: float,
        iv: float,
        dt_ms: int,
    ) -> None:
        """`step` over a span of ticks: the index from s[i] to price[i], the book's greeks
        at s[i] (before[i])."""
        ok = (s > 0) & np.isfinite(price)
        ds = np.where(ok, price - s, 0.0)
        self.delta += float(np.sum(before.delta_coin * s * ds / np.where(ok, s, 1.0)))
        self.gamma += float(np.sum(0.5 * before.gamma_coin * ds * ds))
        self.theta += float(np.sum(np.where(ok, before.theta_usd, 0.0))) * dt_ms / YEAR_MS
        if math.isfinite(iv) and math.isfinite(iv_before):
            self.vega += float(np.sum(np.where(ok, before.vega_usd, 0.0) * (iv - iv_before)))

    def close(
        self, total_usd: float, fees_usd: float, slippage_usd: float, funding_usd: float
    ) -> None:
        """Books the costs (as losses) and the residual against the path's hedged P&L."""
        self.fees = -fees_usd
        self.slippage = -slippage_usd
        self.funding = -funding_usd
        explained = self.delta + self.gamma + self.theta + self.vega
        self.residual = total_usd - (explained + self.fees + self.slippage + self.funding)

    def as_dict(self) -> dict[str, float]:
        return {name: float(getattr(self, name)) for name in PARTS}
