"""A backtest's event sink: counts and costs, in constant memory (no event is kept)."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from bot.core.book import LineKey
from bot.core.instruments import Instrument
from bot.core.pnl import Costs
from bot.events import Event

if TYPE_CHECKING:
    from bot.backtest.path import PathResult


class Recorder:
    def __init__(self, catalog: Mapping[LineKey, Instrument]) -> None:
        self.catalog = catalog
        self.index: Callable[[str], float] = lambda u: 0.0
        self.orders = 0
        self.fills = 0
        self.rejects = 0
        self.decisions = 0
        self.costs = Costs(catalog)

    @property
    def fees_usd(self) -> float:
        return self.costs.fees_usd

    @property
    def slippage_usd(self) -> float:
        return self.costs.slippage_usd

    def emit(self, event: Event) -> None:
        d = event.data
        self.costs.on_event(event.name, d, self.index)
        if event.name == "order.sent":
            self.orders += 1
        elif event.name == "order.fill":
            self.fills += 1
        elif event.kind == "reject":
            self.rejects += 1
        elif event.name == "hedge.decision" and d.get("trade"):
            self.decisions += 1

    def fill_into(self, result: PathResult) -> None:
        result.orders = self.orders
        result.fills = self.fills
        result.rejects = self.rejects
        result.decisions = self.decisions
        result.fees_usd = self.fees_usd
        result.slippage_usd = self.slippage_usd


class EventsFile:
    """Every event as one JSON line (`--events`): a backtest's audit trail, in the shape of the
    daemon's log lines, to read or to compare with a paper run."""

    def __init__(self, path: Path) -> None:
        self._file = path.open("w", encoding="utf-8")

    def emit(self, event: Event) -> None:
        self._file.write(json.dumps(event.as_dict(), sort_keys=True, default=str) + "\n")

    def close(self) -> None:
        self._file.close()
