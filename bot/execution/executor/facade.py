"""The Executor facade: submit an approved intent (guards, then the mode that works it), and the
lifecycle (cancel_all, finish, close) at shutdown."""

from __future__ import annotations

import asyncio
import dataclasses

from bot.core.market import OrderBook, Ticker
from bot.core.orders import OrderIntent
from bot.execution import pricing
from bot.execution.executor.algorithms import Algorithms
from bot.execution.executor.taker import Refusal
from bot.execution.ledger import TrackedOrder
from bot.tasks import cancel_all


class Executor(Algorithms):
    """Works approved intents on their venues until every fill is booked (see the package doc).
    The constructor's arguments are described at OrderTracking.__init__."""

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
            self._refuse(intent, "no_mid", symbol=intent.symbol)
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
        self._spawn(self._work_single(order, plan), intent.client_id)
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
            await self._cancel(order)
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=timeout)

    async def finish(self) -> None:
        """Let the orders in flight complete (no new decision comes at shutdown), at most
        shutdown_timeout_s; then cancel whatever is still working, like cancel_all."""
        if self._tasks:
            await asyncio.wait(
                list(self._tasks), timeout=self.clock.to_real(self.cfg.shutdown_timeout_s)
            )
        await self.cancel_all()

    async def close(self) -> None:
        self._stopping = True
        await cancel_all(list(self._tasks))

    @property
    def busy(self) -> bool:
        return bool(self._tasks)
