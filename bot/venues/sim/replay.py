"""A market model that replays recorded index prices instead of drawing them.

At each tick the exchange asks for the prices at `to_ms`: each underlying gets the last recorded
price at or before it (the first one before the data starts). The sim still builds its books and
option prices around that index with its own spread and depth. The options' IV is the recorded
options' mean IV when the data has one, else the configured vol. No random draws are made.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Protocol

import numpy as np


class Recording(Protocol):
    def at(self, underlying: str, ts_ms: int) -> tuple[float, float]: ...


class ReplayModel:
    dynamic_vols = True

    def __init__(self, data: Recording, vols: Mapping[str, float]) -> None:
        self.names = sorted(vols)
        self._data = data
        self._base = dict(vols)
        self.vols = dict(vols)

    def advance(
        self, prices: Sequence[float], from_ms: int, to_ms: int, rng: np.random.Generator
    ) -> list[float]:
        out = []
        for u in self.names:
            price, iv = self._data.at(u, to_ms)
            out.append(price)
            self.vols[u] = self._base[u] if math.isnan(iv) else iv
        return out
