"""The Executor facade: submit an approved intent (guards, then the mode that works it), the
driver that carries out the order logic's commands, and the lifecycle (cancel_all, finish,
close) at shutdown."""

from __future__ import annotations

import dataclasses
import functools

from bot.core.market import OrderBook, Ticker
from bot.core.orders import OrderIntent
from bot.execution import pricing
from bot.execution.executor.algorithms import Algorithms
from bot.execution.executor.commands import Command
from bot.execution.executor.driver import Driver
from bot.execution.executor.taker import Refusal
from bot.execution.executor.tracking import log
from bot.execution.ledger import TrackedOrder
from bot.venues.base import VenueError


class Executor(Algorithms):
    """Works approved intents on their venues until every fill is booked (see the package doc).
    The constructor's arguments are described at OrderTracking.__init__."""

    @functools.cached_property
    def _driver(self) -> Driver:
        return Driver(self.venues, self.clock, self, lambda: self.cfg.order_timeout_s)

    def _out(self, commands: list[Command]) -> None:
        self._driver.carry(commands)

    def _on_idle(self) -> None:
        self._driver.idle()

    def submit(
        self, account: str, intent: OrderIntent, ticker: Ticker, book: OrderBook | None = None
    ) -> TrackedOrder | None:
        """Guard, price and register the intent, then work it in a task. None when refused.
        `book` is the latest order book of the instrument, when the engine has one."""
        if self._stopping:
            self._refuse(intent, "shutting_down")
            return None
        key = (account, intent.symbol)
        ins = self.instruments[key]
        cfg = self.cfg.for_symbol(intent.symbol)
        fee_bps = ins.taker_fee * 10_000.0
        if fee_bps > cfg.max_fee_bps:
            self._refuse(intent, "fee_cap", fee_bps=fee_bps, max_fee_bps=cfg.max_fee_bps)
            return None
        live = self.fresh_book(key, book)
        if ticker.mid is None and live is None:
            self._refuse(intent, "no_mid")
            return None
        # maker and twap need depth; with no fresh book the taker path decides.
        parent = self._start_algorithm(account, intent, live) if live is not None else None
        if parent is not None:
            return parent
        return self._submit_taker(account, intent, ticker, live)

    def _start_algorithm(
        self, account: str, intent: OrderIntent, live: OrderBook
    ) -> TrackedOrder | None:
        """Start the maker_first or twap parent the intent's mode asks for; None when it goes
        as one taker order (taker mode, or a twap that fits in one slice)."""
        cfg = self.cfg.for_symbol(intent.symbol)
        if cfg.mode == "maker_first":
            return self._start_parent(account, intent, "maker_first", 0, live)
        if cfg.mode != "twap":
            return None
        full = pricing.walk_book(live, intent.side, intent.amount)
        assert full is not None
        slices = pricing.twap_slices(
            intent.amount,
            full.depth,
            cfg.twap_depth_fraction,
            cfg.twap_max_slices,
            self.instruments[(account, intent.symbol)].amount_step,
        )
        if slices > 1:
            return self._start_parent(account, intent, "twap", slices, live)
        return None

    def _submit_taker(
        self, account: str, intent: OrderIntent, ticker: Ticker, live: OrderBook | None
    ) -> TrackedOrder | None:
        """One taker order, shrunk to what fits the slippage cap when `on_slippage` allows."""
        cfg = self.cfg.for_symbol(intent.symbol)
        try:
            plan = self.plan_taker(
                account, intent.symbol, intent.side, intent.amount, live, ticker.mid
            )
        except Refusal as r:
            self._refuse(intent, r.rule, **r.numbers)
            return None
        if plan.amount < intent.amount - 1e-12:
            self._emit(
                "order",
                "order.shrunk",
                client_id=intent.client_id,
                underlying=intent.underlying,
                symbol=intent.symbol,
                requested=intent.amount,
                amount=plan.amount,
                max_slippage_bps=cfg.max_slippage_bps,
                slippage_bps=plan.walk.slippage_bps if plan.walk else None,
            )
            intent = dataclasses.replace(intent, amount=plan.amount)
        order = self._open(account, intent, plan.price)
        self._out(self._place(order, plan.mid, cfg.order_timeout_s, cost=plan.cost))
        return order

    # ---- shutdown -------------------------------------------------------------------------

    async def cancel_all(self) -> None:
        """Stop starting new children, cancel every order still working and wait (bounded)
        for the outcome."""
        self._stopping = True
        timeout = self.clock.to_real(self.cfg.shutdown_timeout_s)
        for order in list(self.ledger.unsettled()):
            if order.status.is_terminal or order.request is None:
                continue
            await self._cancel_now(order)
        await self.until_idle(timeout)

    async def _cancel_now(self, order: TrackedOrder) -> None:
        venue = self.venues[order.account]
        cid, symbol = order.intent.client_id, order.intent.symbol
        try:
            update = await self.clock.wait_for(
                venue.cancel_order(cid, symbol), self.cfg.order_timeout_s
            )
        except (VenueError, TimeoutError) as e:
            log.warning("order.venue_call_failed", call="cancel", client_id=cid, error=repr(e))
            return
        if update is not None:
            self.on_update(order.account, update)

    async def finish(self) -> None:
        """Let the orders in flight complete (no new decision comes at shutdown), at most
        shutdown_timeout_s; then cancel whatever is still working, like cancel_all."""
        await self.until_idle(self.clock.to_real(self.cfg.shutdown_timeout_s))
        await self.cancel_all()

    async def until_idle(self, timeout_s: float) -> None:
        """Wait, at most `timeout_s` loop seconds, until no order or parent is being worked."""
        await self._driver.until_idle(lambda: self.busy, timeout_s)

    async def close(self) -> None:
        """Drop every venue call in flight and every follow-up, as they stand."""
        self._stopping = True
        await self._driver.close()
        for work in list(self._works.values()):
            self._drop(work)
        for parent in list(self._parents.values()):
            if parent.timer is not None:
                parent.timer.cancel()
        self._parents.clear()

    @property
    def busy(self) -> bool:
        """Some order or parent is still being worked."""
        return bool(self._works or self._parents)
