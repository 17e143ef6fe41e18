"""What the clock settles on the simulated exchange: perpetual funding every 8 hours and
instruments at their expiry.

Functions over the exchange's state (config, listing, ledger, quotes), called from its tick. The
listing and the rates are fixed for an exchange's life, so the perps funding can move are
known once (`funded_perps`) and a tick looks at those alone, not at every position held.
"""

from __future__ import annotations

import heapq
from collections.abc import Collection, Mapping

import structlog

from bot.config_sim import SimConfig
from bot.core.instruments import Instrument, Kind
from bot.core.orders import PositionReport
from bot.venues.sim.ledger import Ledger
from bot.venues.sim.listing import settle_currency
from bot.venues.sim.quotes import Quotes

log = structlog.get_logger(__name__)

# Perpetual funding is paid at every multiple of 8 hours since the epoch (00:00, 08:00, 16:00
# UTC), as the major venues do.
FUNDING_INTERVAL_MS = 8 * 3_600_000

Schedule = list[tuple[int, str]]  # heap of (expiry, symbol) not yet expired


def funding_rate(cfg: SimConfig, inst: Instrument | None) -> float:
    """The configured funding rate of a perpetual per 8 hours (0 for anything else)."""
    if inst is None or inst.kind is not Kind.PERP:
        return 0.0
    return cfg.funding_rates.get(inst.symbol, cfg.funding_rate)


def funded_perps(cfg: SimConfig, instruments: Mapping[str, Instrument]) -> frozenset[str]:
    """The listed perps at a non-zero rate: the only positions funding can move."""
    return frozenset(s for s, i in instruments.items() if funding_rate(cfg, i) != 0.0)


def fundings_due(last_ms: int, now_ms: int) -> int:
    """How many funding times fell in (last_ms, now_ms]."""
    return now_ms // FUNDING_INTERVAL_MS - last_ms // FUNDING_INTERVAL_MS


def next_funding_ms(ledger: Ledger, funded: Collection[str], now_ms: int) -> int | None:
    """The next funding time after `now_ms` that would move money (one of `funded` held), or
    None when none would."""
    if not any(abs(ledger.qty(s)) > 0.0 for s in funded):
        return None
    return (now_ms // FUNDING_INTERVAL_MS + 1) * FUNDING_INTERVAL_MS


def pay_funding(
    cfg: SimConfig,
    ledger: Ledger,
    instruments: Mapping[str, Instrument],
    funded: Collection[str],
    expired: Collection[str],
    quotes: Quotes,
    times: int,
    now_ms: int,
) -> list[float]:
    """`times` funding payments fell since the last tick: each funded perp held pays (or gets)
    its rate on the notional at the mark now. Returns what each paid in USD at the index
    (negative: received), in ledger order: the caller adds them up in that order. A walk of
    every position, but only at a funding time."""
    paid_usd: list[float] = []
    for sym, pos in list(ledger.positions.items()):
        if sym not in funded or pos.qty == 0.0 or sym in expired:
            continue
        inst = instruments[sym]
        rate = funding_rate(cfg, inst)
        mark = quotes.fair(sym).mark
        paid = sum(ledger.pay_funding(inst, rate, mark) for _ in range(times))
        index = quotes.index(inst.underlying)
        paid_usd.append(paid * index if inst.is_inverse else paid)
        log.debug("sim.funding", symbol=sym, qty=pos.qty, rate=rate, paid=paid, ts_ms=now_ms)
    return paid_usd


def expiry_schedule(instruments: Mapping[str, Instrument], expired: Collection[str]) -> Schedule:
    """The instruments still to expire, soonest first."""
    schedule = [
        (i.expiry_ms, s)
        for s, i in instruments.items()
        if i.expiry_ms is not None and s not in expired
    ]
    heapq.heapify(schedule)
    return schedule


def next_expiry_ms(schedule: Schedule) -> int | None:
    return schedule[0][0] if schedule else None


def pop_due(schedule: Schedule, now_ms: int) -> set[str]:
    """Take the instruments expiring at or before `now_ms` off the schedule."""
    due: set[str] = set()
    while schedule and schedule[0][0] <= now_ms:
        due.add(heapq.heappop(schedule)[1])
    return due


def settle_expiry(
    ledger: Ledger, inst: Instrument, index: float, now_ms: int
) -> PositionReport | None:
    """Close the position in `inst`, expired now, at `index`; its (zero) position report when
    one was held."""
    held = ledger.qty(inst.symbol)
    cash = ledger.settle_expired(inst, index)
    log.info(
        "sim.instrument_expired",
        symbol=inst.symbol,
        index=index,
        qty=held,
        cash=cash,
        currency=settle_currency(inst),
    )
    return PositionReport(inst.symbol, 0.0, now_ms) if held else None
