"""A market model that can draw its next step before the exchange takes it: the backtest's
fast-forward (fastforward.py) looks at the next tick's prices with the model's own draws, and
the exchange's tick takes the same step when the span ends there, so a seed gives one path."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from bot.venues.sim.models import MarketModel


class Lookahead:
    """A market model that can draw its next step before the exchange takes it: `peek` steps
    the wrapped model (same draws), `advance` hands the peeked step out when the exchange's own
    tick asks for it; `take` drops it when the fast-forward used it instead."""

    def __init__(self, inner: MarketModel) -> None:
        self.inner = inner
        self.names = inner.names
        self.dynamic_vols = inner.dynamic_vols
        self._next: tuple[int, int, list[float]] | None = None
        self._vols_before: dict[str, float] = {}

    @property
    def vols(self) -> Mapping[str, float]:
        return self._vols_before if self._next is not None else self.inner.vols

    def peek(
        self, prices: Sequence[float], from_ms: int, to_ms: int, rng: np.random.Generator
    ) -> tuple[list[float], bool]:
        """The next step's prices, and whether the model's vols moved with it."""
        if self._next is not None:
            raise RuntimeError("a peeked step was neither taken nor advanced")
        if self.dynamic_vols:
            self._vols_before = dict(self.inner.vols)
        out = self.inner.advance(prices, from_ms, to_ms, rng)
        self._next = (from_ms, to_ms, out)
        moved = self.dynamic_vols and dict(self.inner.vols) != self._vols_before
        return out, moved

    def take(self) -> None:
        self._next = None

    def advance(
        self, prices: Sequence[float], from_ms: int, to_ms: int, rng: np.random.Generator
    ) -> list[float]:
        step = self._next
        if step is None:
            return self.inner.advance(prices, from_ms, to_ms, rng)
        self._next = None
        if (step[0], step[1]) != (from_ms, to_ms):
            raise RuntimeError(f"peeked step {step[:2]} taken as ({from_ms}, {to_ms})")
        return list(step[2])
