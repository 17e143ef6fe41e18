"""The lab's pictures, drawn headless (matplotlib's Agg backend) to PNG files.

matplotlib is the optional `lab` extra: it is imported inside the functions, so the daemon never
loads it, and a backtest without it still writes its JSON (`missing()` says why no picture).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from bot.backtest.path import PathResult


def missing() -> str | None:
    """Why no picture can be drawn here, or None."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        return "matplotlib is not installed (pip install 'hedgebot[lab]')"
    return None


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")  # no display: files only
    import matplotlib.pyplot as plt

    return plt


def _bins(values: Sequence[float], want: int) -> Any:
    """`want` bins' edges over `values`; one bin padded around them when their range is too
    narrow for its magnitude to split (numpy refuses: "Too many bins")."""
    import numpy as np

    try:
        return np.histogram_bin_edges(values, bins=want)
    except ValueError:
        lo, hi = min(values), max(values)
        pad = max(abs(lo), abs(hi)) * 1e-6
        return np.array([lo - pad, hi + pad])


def backtest_png(path: Path, results: Sequence[PathResult], title: str) -> Path:
    """Four panels: the first path's index, its delta against the band, its cumulative cost,
    and the hedged P&L over all paths."""
    plt = _pyplot()
    fig, axes = plt.subplots(2, 2, figsize=(12, 8), constrained_layout=True)
    first = results[0]
    s = first.series
    ax = axes[0][0]
    ax.plot(s.hours, s.price, color="tab:blue", lw=1)
    ax.set(title=f"index (path seed {first.seed})", xlabel="hours", ylabel="USD")
    ax = axes[0][1]
    ax.fill_between(s.hours, s.lower, s.upper, color="tab:green", alpha=0.2, label="band")
    ax.plot(s.hours, s.target, color="tab:green", lw=0.8, label="target")
    ax.plot(s.hours, s.delta, color="tab:red", lw=1, label="delta")
    ax.set(title="delta against the band", xlabel="hours", ylabel=s.unit)
    ax.legend(loc="upper right", fontsize="small")
    ax = axes[1][0]
    ax.plot(s.hours, s.cost_usd, color="tab:orange", lw=1)
    ax.set(title="cumulative cost (fees + slippage)", xlabel="hours", ylabel="USD")
    ax = axes[1][1]
    pnl = [r.pnl_usd for r in results]
    ax.hist(pnl, bins=_bins(pnl, max(5, min(50, len(pnl) // 2))), color="tab:purple", alpha=0.8)
    ax.axvline(sum(pnl) / len(pnl), color="black", lw=1, ls="--", label="mean")
    ax.set(title=f"hedged P&L over {len(pnl)} path(s)", xlabel="USD", ylabel="paths")
    ax.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def frontier_png(path: Path, rows: Sequence[dict[str, Any]], title: str) -> Path:
    """Mean cost against hedged P&L std (left) and 5% CVaR (right); frontier settings joined
    and labelled, the recommendation (if any) circled."""
    plt = _pyplot()
    fig, axes = plt.subplots(1, 2, figsize=(13, 6), constrained_layout=True)
    for ax, risk, flag, label in (
        (axes[0], "pnl_std_usd", "frontier", "hedged P&L std (USD)"),
        (axes[1], "pnl_cvar_loss_usd", "frontier_cvar", "5% CVaR loss (USD)"),
    ):
        ax.scatter(
            [r[risk] for r in rows],
            [r["cost_mean_usd"] for r in rows],
            color="tab:gray",
            s=18,
            label="setting",
        )
        front = sorted((r for r in rows if r.get(flag)), key=lambda r: r[risk])
        if front:
            ax.plot(
                [r[risk] for r in front],
                [r["cost_mean_usd"] for r in front],
                color="tab:red",
                marker="o",
                lw=1,
                label="efficient frontier",
            )
            for r in front:
                ax.annotate(r["label"], (r[risk], r["cost_mean_usd"]), fontsize=7)
        for r in rows:
            if r.get("recommended"):
                ax.scatter(
                    [r[risk]], [r["cost_mean_usd"]], s=160, facecolors="none", edgecolors="k"
                )
        ax.set(xlabel=label, ylabel="mean cost: fees + slippage (USD)")
        ax.legend(loc="upper right", fontsize="small")
    fig.suptitle(title)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
