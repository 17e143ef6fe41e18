"""Restart recovery: every intent the journal says was in flight is settled with the venue, by
client id, before the engine makes any decision. No intent is ever sent again.

For each in-flight intent (journal.in_flight_intents()):
- the venue never saw it (fetch_order -> None) and it was sent more than
  `execution.lookup_grace_s` ago (or never sent): the journal marks it rejected; sent more
  recently, it stays in flight and the executor looks it up until the grace is over;
- the venue has it: it goes into the ledger (so it counts in delta), and
  - open, with `execution.recover_open_orders = "cancel"` (default): it is cancelled first, so
    the fills fetched next are final;
  - open, with "keep": the executor keeps working it (bounded wait, cancel on timeout);
  - its fills are fetched and booked once: the journal dedupes by trade id, the ledger by trade
    id too, so a later stream or REST delivery of the same trade changes nothing.

Why fills are not booked into the position twice: recovery runs before the engine's initial
reconciliation, which adopts the venue's REST positions for every line. Those positions already
include every fill of an order that is terminal when its fills are fetched, and the trade ids
booked here make any redelivery a no-op. An order kept open ("keep") can still fill between the
fill fetch and the position read; that one fill would be counted by both, until the periodic
reconciliation (venue wins once nothing is in flight) corrects it. Hence "cancel" is the
default.

A lookup that keeps failing leaves the intent in the ledger as in flight (it may have filled),
which blocks new decisions on its underlying until the executor resolves it: unknown is treated
as "may fill", never as "did not happen".
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any, Protocol, TypeVar

import structlog

from bot.core.orders import OrderRequest, OrderStatus, OrderUpdate
from bot.execution.executor import Executor
from bot.execution.ledger import TrackedOrder
from bot.io.journal_rows import InFlight
from bot.venues.base import Venue, VenueError

log = structlog.get_logger("hedgebot.recovery")

LOOKUP_ATTEMPTS = 4
T = TypeVar("T")


class RecoveryJournal(Protocol):
    def in_flight_intents(self) -> list[InFlight]: ...

    def record_order_update(self, update: OrderUpdate) -> None: ...

    def intent(self, client_id: str) -> Any: ...


Emit = Callable[..., None]  # emit(kind, name, **data)


@dataclass(slots=True)
class RecoveryReport:
    in_flight: int = 0
    never_sent: list[str] = field(default_factory=list)  # the venue never saw them: rejected
    finished: list[str] = field(default_factory=list)  # terminal at the venue
    cancelled: list[str] = field(default_factory=list)  # open, cancelled by recovery
    kept: list[str] = field(default_factory=list)  # open, worked on by the executor
    unresolved: list[str] = field(default_factory=list)  # lookups failed: left in flight
    pending: list[str] = field(default_factory=list)  # not found yet, within lookup_grace_s
    fills_booked: int = 0  # fills new to the journal
    fills_seen: int = 0  # fills fetched (new or already journaled)

    def as_dict(self) -> dict[str, Any]:
        return {
            "in_flight": self.in_flight,
            "never_sent": self.never_sent,
            "finished": self.finished,
            "cancelled": self.cancelled,
            "kept": self.kept,
            "unresolved": self.unresolved,
            "pending": self.pending,
            "fills_booked": self.fills_booked,
            "fills_seen": self.fills_seen,
        }


async def _retry(
    executor: Executor, call: Callable[[], Awaitable[T]], what: str, cid: str
) -> tuple[bool, T | None]:
    """(ok, result) of a venue read retried with backoff on errors and timeouts, each bounded
    by execution.order_timeout_s."""
    clock, timeout_s = executor.clock, executor.cfg.order_timeout_s
    delay = 0.25
    for attempt in range(1, LOOKUP_ATTEMPTS + 1):
        try:
            return True, await asyncio.wait_for(call(), clock.to_real(timeout_s))
        except (VenueError, TimeoutError) as e:
            log.warning(
                "recovery.read_failed", what=what, client_id=cid, attempt=attempt, error=repr(e)
            )
        if attempt < LOOKUP_ATTEMPTS:
            await clock.sleep(delay)
            delay *= 2
    return False, None


def accounts_for(
    symbol: str, preferred: str | None, catalog: Mapping[tuple[str, str], Any]
) -> list[str]:
    """Accounts that may hold an order on `symbol`: the hedge account first."""
    out = [preferred] if preferred is not None and (preferred, symbol) in catalog else []
    out += sorted({a for (a, s) in catalog if s == symbol and a != preferred})
    return out


async def recover(
    executor: Executor,
    journal: RecoveryJournal,
    catalog: Mapping[tuple[str, str], Any],
    account_of: Callable[[str], str | None],
    emit: Emit,
) -> RecoveryReport:
    """Settle the journal's in-flight intents with the venues (see the module doc)."""
    report = RecoveryReport()
    pending = journal.in_flight_intents()
    report.in_flight = len(pending)
    for item in pending:
        intent = item.intent
        if intent.client_id in executor.ledger.orders:
            continue
        accounts = accounts_for(intent.symbol, account_of(intent.underlying), catalog)
        await _recover_one(executor, journal, item, accounts, emit, report)
    emit("state", "recovery.done", **report.as_dict())
    return report


async def _recover_one(
    executor: Executor,
    journal: RecoveryJournal,
    item: InFlight,
    accounts: Sequence[str],
    emit: Emit,
    report: RecoveryReport,
) -> None:
    """Settle one in-flight intent: rejected when no venue has it (past the grace), else put
    in the ledger and settled or followed by the executor."""
    intent = item.intent
    cid = intent.client_id
    found, account, failed = await _look_up(executor, cid, intent.symbol, accounts)
    now = executor.clock.now_ms()
    # A sent intent the venue does not show yet may still appear (venues take time to
    # show new orders): only after lookup_grace_s since it was sent does "not found" mean
    # it never arrived. Until then it is followed like an ambiguous create.
    young = item.status is not OrderStatus.CREATED and now < item.ts_ms + int(
        executor.cfg.lookup_grace_s * 1000
    )
    if found is None and not failed and not young:
        _reject_unseen(journal, item, now, emit, report)
        return
    where = account if account is not None else (accounts[0] if accounts else None)
    if where is None:
        report.unresolved.append(cid)
        emit("alert", "recovery.no_account", client_id=cid, symbol=intent.symbol)
        return
    request = OrderRequest(
        client_id=cid,
        symbol=intent.symbol,
        side=intent.side,
        amount=intent.amount,
        price=item.price if item.price is not None else 0.0,
        reduce_only=intent.reduce_only,
    )
    order = executor.ledger.open(where, intent, request, item.ts_ms)
    order.status = OrderStatus.SENT  # outcome unknown until the venue says
    if found is None and not failed:
        # Not shown yet, within the grace: in flight, looked up until the grace is over.
        report.pending.append(cid)
        emit("order", "recovery.not_found_yet", client_id=cid, symbol=intent.symbol)
        executor.adopt(order, look_up=True)
        return
    if found is None:
        # Every lookup failed: it may be live and filling. It stays in flight and the
        # executor keeps asking (bounded waits, alerts) before the underlying trades again.
        report.unresolved.append(cid)
        emit("alert", "recovery.unresolved", client_id=cid, symbol=intent.symbol)
        executor.adopt(order, look_up=True)
        return
    await _settle_found(executor, where, order, found, emit, report)


async def _look_up(
    executor: Executor, cid: str, symbol: str, accounts: Sequence[str]
) -> tuple[OrderUpdate | None, str | None, bool]:
    """(the order as the first venue that has it shows it, that account, whether any lookup
    failed) for each account in turn."""
    failed = False
    for acc in accounts:
        venue = executor.venues[acc]
        ok, result = await _retry(
            executor, partial(venue.fetch_order, cid, symbol), "fetch_order", cid
        )
        if not ok:
            failed = True
            continue
        if result is not None:
            return result, acc, failed
    return None, None, failed


def _reject_unseen(
    journal: RecoveryJournal, item: InFlight, now: int, emit: Emit, report: RecoveryReport
) -> None:
    """No venue has seen it: the create never arrived (or was never sent: CREATED)."""
    intent = item.intent
    reason = "never sent" if item.status is OrderStatus.CREATED else "not at venue"
    journal.record_order_update(
        OrderUpdate(
            client_id=intent.client_id,
            symbol=intent.symbol,
            side=intent.side,
            amount=intent.amount,
            filled=0.0,
            status=OrderStatus.REJECTED,
            ts_ms=now,
            reason=f"recovery: {reason}",
        )
    )
    report.never_sent.append(intent.client_id)
    emit(
        "order",
        "recovery.intent_rejected",
        client_id=intent.client_id,
        symbol=intent.symbol,
        reason=reason,
        journal_status=item.status.value,
    )


async def _settle_found(
    executor: Executor,
    where: str,
    order: TrackedOrder,
    found: OrderUpdate,
    emit: Emit,
    report: RecoveryReport,
) -> None:
    """An order the venue has: take its state, cancel it if open (`recover_open_orders`), book
    its fills, and leave what is still unsettled to the executor."""
    cid, symbol = order.intent.client_id, order.intent.symbol
    executor.on_update(where, found)
    if not order.status.is_terminal and executor.cfg.recover_open_orders == "cancel":
        await _cancel_open(executor, where, order)
        if order.status.is_terminal:
            report.cancelled.append(cid)
    elif order.status.is_terminal:
        report.finished.append(cid)
    fills = await _fetch_fills(executor, where, cid, symbol)
    report.fills_seen += len(fills)
    report.fills_booked += sum(1 for f in fills if executor.on_fill(where, f))
    emit(
        "order",
        "recovery.order",
        client_id=cid,
        account=where,
        symbol=symbol,
        status=order.status.value,
        venue_filled=order.venue_filled,
        booked=order.booked,
        fills=len(fills),
    )
    if not order.settled:
        # Still open (kept, or the cancel did not land) or fills still missing: the executor
        # follows it with bounded waits, like any order it sent itself.
        if not order.status.is_terminal:
            report.kept.append(cid)
        executor.adopt(order)


async def _cancel_open(executor: Executor, where: str, order: TrackedOrder) -> None:
    """Cancel an open recovered order, then read its state again if the cancel's answer did
    not make it final, so the fills fetched next are final."""
    cid, symbol = order.intent.client_id, order.intent.symbol
    venue = executor.venues[where]
    ok, update = await _retry(
        executor, partial(venue.cancel_order, cid, symbol), "cancel_order", cid
    )
    if ok and update is not None:
        executor.on_update(where, update)
    if not order.status.is_terminal:
        ok, again = await _retry(
            executor, partial(venue.fetch_order, cid, symbol), "fetch_order", cid
        )
        if ok and again is not None:
            executor.on_update(where, again)


async def _fetch_fills(executor: Executor, account: str, cid: str, symbol: str) -> Sequence[Any]:
    venue = executor.venues[account]
    ok, fills = await _retry(executor, partial(venue.fetch_fills, cid, symbol), "fetch_fills", cid)
    if not ok or fills is None:
        return []
    return list(fills)


async def report_unknown_orders(
    venues: Mapping[str, Venue],
    executor: Executor,
    journal: RecoveryJournal | None,
    emit: Emit,
) -> list[str]:
    """Open orders at the venues that carry our client id prefix but that neither the ledger
    nor the journal knows: another instance of the bot, a lost journal, or a bug. Reported as
    alerts; left alone (cancelling someone else's order is not ours to decide)."""
    prefix = executor.cfg.client_id_prefix
    unknown: list[str] = []
    for name, venue in venues.items():
        try:
            open_orders = await asyncio.wait_for(
                venue.fetch_open_orders(), executor.clock.to_real(executor.cfg.order_timeout_s)
            )
        except (VenueError, TimeoutError) as e:
            log.warning("unknown_orders.check_failed", account=name, error=repr(e))
            continue
        for o in open_orders:
            cid = o.client_id or ""
            if not cid.startswith(prefix) or cid in executor.ledger.orders:
                continue
            unknown.append(cid)
            if cid in executor.reported_unknown:
                continue  # one alert per order, not one per reconciliation
            executor.reported_unknown.add(cid)
            if journal is not None and journal.intent(cid) is not None:
                # Journaled but not in the ledger: finished in our books, open at the venue.
                emit(
                    "alert",
                    "order.unknown_at_venue",
                    account=name,
                    client_id=cid,
                    symbol=o.symbol,
                    status=o.status.value,
                    journaled=True,
                )
            else:
                emit(
                    "alert",
                    "order.unknown_at_venue",
                    account=name,
                    client_id=cid,
                    symbol=o.symbol,
                    status=o.status.value,
                    journaled=False,
                )
    return unknown
