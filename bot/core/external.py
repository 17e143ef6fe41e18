"""Positions reported from outside the bot (MQTT `positions/in`): the caps on them, as one pure
check, and how they enter an underlying's held quantities.

A position held elsewhere moves the hedge like our own, so a wrong or hostile message
(`delta_coin = 1e9`, thousands of sources, a year-long lifetime) must be refused, not hedged.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.config_ops import ExternalConfig
from bot.core.book_columns import FloatArray


@dataclass(frozen=True, slots=True)
class External:
    """A position held outside the bot's venues (OTC, another venue), reported by an operator
    or another system; counted until `expires_at_ms` (wall time: it expires in the real world)."""

    underlying: str
    qty: float
    delta_coin: float | None  # None: a listed instrument, valued like our own lines
    expires_at_ms: int


# (source, symbol) -> what that source holds, as the hedger keeps them.
Externals = Mapping[tuple[str, str], External]


def check_external(
    cfg: ExternalConfig,
    current: Externals,
    key: tuple[str, str],
    underlying: str,
    qty: float,
    delta_coin: float | None,
    expires_at_ms: int,
    now_ms: int,
    delta_bound: float | None = None,
) -> str | None:
    """None when the position may be counted, else the rule it breaks (named `external.<cap>`).
    A removal (qty 0 and no delta) is always allowed. Positions given without `delta_coin` are
    valued from their instrument later; here they are bounded by `max_abs_qty` and, where the
    caller knows one, by `delta_bound` (|qty| x coin per contract: no delta-one or option
    contract moves more than that) against the per-source cap."""
    source = key[0]
    if qty == 0 and not delta_coin:
        return None
    if abs(qty) > cfg.max_abs_qty:
        return f"external.max_abs_qty: |qty| {abs(qty):g} is above {cfg.max_abs_qty:g}"
    ttl_s = (expires_at_ms - now_ms) / 1000
    if ttl_s > cfg.max_ttl_s:
        return f"external.max_ttl_s: lifetime {ttl_s:.0f} s is above {cfg.max_ttl_s:g} s"
    per_source = cfg.max_abs_delta_coin_per_source
    if delta_coin is not None and abs(delta_coin) > per_source:
        return (
            f"external.max_abs_delta_coin_per_source: |delta_coin| {abs(delta_coin):g} "
            f"is above {per_source:g}"
        )
    if delta_coin is None and delta_bound is not None and abs(delta_bound) > per_source:
        return (
            f"external.max_abs_delta_coin_per_source: |qty x contract size| {abs(delta_bound):g} "
            f"coin is above {per_source:g}"
        )
    after = dict(current)
    after[key] = External(underlying, qty, delta_coin, expires_at_ms)
    sources = {s for s, _ in after}
    if len(sources) > cfg.max_sources:
        return f"external.max_sources: {len(sources)} sources would be above {cfg.max_sources}"
    if len(after) > cfg.max_positions:
        return f"external.max_positions: {len(after)} positions would be above {cfg.max_positions}"
    net_source = sum(
        e.delta_coin or 0.0
        for (s, _), e in after.items()
        if s == source and e.underlying == underlying
    )
    if abs(net_source) > per_source:
        return (
            f"external.max_abs_delta_coin_per_source: source {source!r} would hold "
            f"{net_source:g} {underlying} delta, beyond +/-{per_source:g}"
        )
    net = sum(e.delta_coin or 0.0 for e in after.values() if e.underlying == underlying)
    if abs(net) > cfg.max_abs_delta_coin_total:
        return (
            f"external.max_abs_delta_coin_total: external {underlying} delta would be "
            f"{net:g}, beyond +/-{cfg.max_abs_delta_coin_total:g}"
        )
    return None


def with_external(
    externals: Externals, underlying: str, column: Mapping[tuple[str, str], int], held: FloatArray
) -> tuple[FloatArray, float]:
    """`held` (contracts per column) with the external positions of `underlying` on listed
    instruments added to their own lines (in a copy: `held` is left as it is), and the external
    delta given in coin."""
    out, external = held, 0.0
    for (source, symbol), ext in externals.items():
        if ext.underlying != underlying:
            continue
        if ext.delta_coin is not None:
            external += ext.delta_coin
            continue
        # a listed instrument held elsewhere: valued like ours, on its own line
        i = column.get((f"external:{source}", symbol))
        if i is not None:
            if out is held:
                out = held.copy()
            out[i] += ext.qty
    return out, external
