"""The backtest hands the hedger each venue's tickers in one batch (ticks.feed): the same
decisions, orders, fills and alerts as one ticker at a time, bad option quotes included."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import pytest

from bot.backtest import ticks
from bot.backtest.path import PathSpec, run_path
from bot.core.book import LineKey
from bot.core.market import Ticker
from bot.hedger.hedger import Hedger
from bot.venues.sim import SimVenue
from tests.conftest import NOW_MS
from tests.test_corridor import fast_forward_settings, settings


def one_at_a_time(hedger: Hedger, venues: dict[str, SimVenue], hedge_lines: list[LineKey]) -> None:
    """The feed as a websocket per line would bring it: ask, then hand over, line by line."""
    for account, symbol in list(hedger.view.lines):
        venue = venues.get(account)
        if venue is not None and symbol not in venue.exchange.expired:
            hedger.on_ticker(account, venue.exchange.ticker(symbol))
    for account, symbol in hedge_lines:
        hedger.on_book(account, venues[account].exchange.book(symbol))


@pytest.mark.parametrize("fast_forward", [False, True])
def test_batched_feed_equals_one_ticker_at_a_time(
    tmp_path: Path, fast_forward: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Regime: an option's ask falls to 0 before expiry, a bad-data alert at that tick.
    market = {"view": "usd", "vol": 0.6, "unit": "coin", "band": 0.4}
    s = fast_forward_settings(settings(tmp_path, True, **market), fast_forward, "regime")
    spec = PathSpec(seed=6, days=1.5, tick_ms=60_000, start_ms=NOW_MS)
    batches: list[int] = []
    real = Hedger.on_tickers

    def counted(self: Hedger, account: str, tickers: Iterable[Ticker]) -> None:
        tickers = list(tickers)
        batches.append(len(tickers))
        real(self, account, tickers)

    monkeypatch.setattr(Hedger, "on_tickers", counted)
    batched = run_path(s, spec, events=tmp_path / "batched.jsonl")
    assert max(batches) > 1, "the feed hands over many tickers at once"
    monkeypatch.setattr(ticks, "feed", one_at_a_time)
    batches.clear()
    single = run_path(s, spec, events=tmp_path / "single.jsonl")
    assert batches and max(batches) == 1
    events = (tmp_path / "batched.jsonl").read_text()
    assert events == (tmp_path / "single.jsonl").read_text()
    assert '"market.bad_data"' in events and batched.orders > 3
    assert (batched.orders, batched.fills, batched.pnl_usd) == (
        single.orders,
        single.fills,
        single.pnl_usd,
    )
