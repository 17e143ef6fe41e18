"""Structured logging: JSON lines for machines, readable lines for a person at a terminal.

The console format rounds numbers to what they mean (prices to the tick, amounts to the lot,
USD to cents, coin to 1e-6, bps to 0.1); JSON lines keep full precision for machines.
"""

from __future__ import annotations

import logging
import math
import sys
from collections.abc import Iterable, Mapping, MutableMapping
from decimal import Decimal
from typing import Any, Literal

import structlog

LEVELS = {
    "debug": logging.DEBUG,
    "info": logging.INFO,
    "warning": logging.WARNING,
    "error": logging.ERROR,
}

PRICE_KEYS = frozenset({"price", "mid", "bid", "ask", "index", "limit", "mark", "last"})
AMOUNT_KEYS = frozenset({"amount", "qty", "filled", "remaining", "contracts", "booked"})
# symbol -> (tick, lot), filled once instruments load: presentation only
_steps: dict[str, tuple[float, float]] = {}


def register_steps(steps: Iterable[tuple[str, float, float]]) -> None:
    """(symbol, price_step, amount_step) of loaded instruments, for the console's rounding."""
    for symbol, tick, lot in steps:
        _steps[symbol] = (tick, lot)


def _to_step(x: float, step: float) -> float:
    decimals = max(0, -int(Decimal(repr(step)).normalize().as_tuple().exponent))
    return round(round(x / step) * step, decimals)


def _sig(x: float, digits: int) -> float:
    if x == 0.0 or not math.isfinite(x):
        return x
    return round(x, digits - 1 - math.floor(math.log10(abs(x))))


def round_value(key: str, x: float, symbol: str | None = None) -> float:
    """One float as an operator reads it, chosen by its key name."""
    if not math.isfinite(x):
        return x
    k = key.lower()
    tick, lot = _steps.get(symbol or "", (None, None))
    if k.endswith("bps"):
        return round(x, 1)
    if k.endswith("usd") or k in ("fees", "fee_usd", "pnl"):
        return round(x, 2)
    if k in PRICE_KEYS or k.endswith("_price"):
        return _to_step(x, tick) if tick else _sig(x, 8)
    if k in AMOUNT_KEYS:
        return _to_step(x, lot) if lot else _sig(x, 8)
    if k.endswith("coin") or k in ("delta", "fee"):
        return round(x, 6)
    return _sig(x, 6)


def _round_any(key: str, v: Any, symbol: str | None) -> Any:
    if isinstance(v, float):
        return round_value(key, v, symbol)
    if isinstance(v, Mapping):
        inner = v.get("symbol") if isinstance(v.get("symbol"), str) else symbol
        return {k: _round_any(str(k), x, inner) for k, x in v.items()}
    if isinstance(v, list | tuple):
        if v and all(isinstance(x, Mapping) and {"symbol", "qty"} <= x.keys() for x in v):
            return ", ".join(_position(x) for x in v)  # lines held: one readable list
        return [_round_any(key, x, symbol) for x in v]
    return v


def _position(line: Mapping[str, Any]) -> str:
    sym, qty = str(line["symbol"]), line["qty"]
    amount = round_value("qty", qty, sym) if isinstance(qty, float) else qty
    where = f"{line['account']}:" if "account" in line else ""
    return f"{where}{sym} {amount:+}"


def round_for_humans(_: Any, __: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor for the console format: no 16-digit floats."""
    symbol = event.get("symbol") if isinstance(event.get("symbol"), str) else None
    for k, v in list(event.items()):
        event[k] = _round_any(k, v, symbol)
    return event


def configure(
    level: str = "info", fmt: Literal["auto", "json", "console"] = "auto", stream: object = None
) -> None:
    out = stream if stream is not None else sys.stdout
    json_lines = fmt == "json" or (fmt == "auto" and not getattr(out, "isatty", lambda: False)())
    renderer: structlog.types.Processor = (
        structlog.processors.JSONRenderer()
        if json_lines
        else structlog.dev.ConsoleRenderer(colors=getattr(out, "isatty", lambda: False)())
    )
    rounding: list[structlog.types.Processor] = [] if json_lines else [round_for_humans]
    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.StackInfoRenderer(),
            structlog.processors.format_exc_info,
            *rounding,
            renderer,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.PrintLoggerFactory(file=out),  # type: ignore[arg-type]
        cache_logger_on_first_use=False,
    )
