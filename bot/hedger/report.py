"""What the operator reads about the book: the lines held and the greeks of one underlying."""

from __future__ import annotations

from typing import Any

from bot.core.book import Exposure
from bot.hedger.view import MarketView


def book_loaded(view: MarketView, exp: Exposure) -> dict[str, Any]:
    """The `book.loaded` event's data: every line of the underlying held (ours by account,
    others' as external:<source>), its quantity in contracts, and the underlying's greeks."""
    u = exp.underlying
    lines = [
        {"account": acc, "symbol": sym, "qty": view.ledger.positions.get((acc, sym), 0.0)}
        for (acc, sym), ins in sorted(view.lines.items())
        if ins.underlying == u and abs(view.ledger.positions.get((acc, sym), 0.0)) > 1e-12
    ]
    for (source, sym), ext in sorted(view.live_external().items()):
        if ext.underlying == u:
            lines.append({"account": f"external:{source}", "symbol": sym, "qty": ext.qty})
    return {
        "underlying": u,
        "price": exp.price,
        "lines": lines,
        "delta_coin": exp.delta_coin,
        "delta_usd": exp.delta_usd,
        "gamma_coin": exp.gamma_coin,
        "vega_usd": exp.vega_usd,
        "theta_usd": exp.theta_usd,
    }
