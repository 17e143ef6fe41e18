"""`hedgebot status`: the routing table, one row per routing candidate of each underlying
(position, limit, funding and basis from the state document's `underlyings.<U>.routing`)."""

from __future__ import annotations

from typing import Any

from rich.table import Table


def _num(v: Any, spec: str) -> str:
    return "-" if not isinstance(v, int | float) or isinstance(v, bool) else format(v, spec)


def routing_table(state: dict[str, Any]) -> Table | None:
    unders = state.get("underlyings")
    rows = [
        (name, c)
        for name, u in sorted(unders.items() if isinstance(unders, dict) else [])
        if isinstance(u, dict)
        for c in (u.get("routing") or [])
        if isinstance(c, dict)
    ]
    if not rows:
        return None
    t = Table(title="routing")
    for col in ("underlying", "account", "symbol"):
        t.add_column(col)
    for col in ("position coin", "limit coin", "funding", "basis bps"):
        t.add_column(col, justify="right")
    for name, c in rows:
        rate = _num(c.get("funding_rate"), "+.4%")
        state_word = c.get("funding")
        funding = "n/a" if state_word == "n/a" else f"{rate} {state_word}"
        t.add_row(
            name,
            str(c.get("account", "")),
            str(c.get("symbol", "")),
            _num(c.get("position_coin"), "+.4f"),
            _num(c.get("limit_coin"), ".4f"),
            funding,
            _num(c.get("basis_bps"), "+.1f"),
        )
    return t
