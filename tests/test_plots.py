"""The backtest picture's P&L histogram takes any finite P&L: numpy refuses to split a range too
narrow for its magnitude ("Too many bins"), which once crashed the PNG of a run on absurd data."""

from __future__ import annotations

import numpy as np
import pytest

from bot.backtest.plots import _bins, _pyplot


@pytest.mark.parametrize(
    "pnl",
    [[-120.5, 30.0, 99.0, 12.0], [250.0], [1e20, 1e20 + 1e4, 1e20 + 2e4], [-3e19, -3e19]],
)
def test_histogram_bins_cover_every_pnl(pnl: list[float]) -> None:
    edges = np.asarray(_bins(pnl, 5))
    assert np.all(np.diff(edges) > 0)
    assert edges[0] <= min(pnl) and max(pnl) <= edges[-1]
    plt = _pyplot()
    fig, ax = plt.subplots()
    try:
        counts, _, _ = ax.hist(pnl, bins=edges)
        assert counts.sum() == len(pnl)
    finally:
        plt.close(fig)


def test_ordinary_pnl_keeps_numpys_bins() -> None:
    pnl = [-120.5, 30.0, 99.0, 12.0]
    assert np.array_equal(_bins(pnl, 5), np.histogram_bin_edges(pnl, bins=5))
