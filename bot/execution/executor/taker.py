"""Pricing and sizing one taker order (pure): the marketable limit, the walk of the book within
the slippage cap, and the expected-cost check (bot/execution/pricing.py)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.config_execution import ExecutionConfig
from bot.core.instruments import Instrument
from bot.core.market import OrderBook
from bot.core.orders import Side
from bot.execution import pricing


def marketable_limit(side: Side, mid: float, max_slippage_bps: float, ins: Instrument) -> float:
    """A limit price that crosses the spread but never fills worse than the slippage cap."""
    cap = mid * (1 + side.sign * max_slippage_bps / 10_000.0)
    return ins.round_price(cap, up=side is Side.SELL)


@dataclass(frozen=True, slots=True)
class TakerPlan:
    amount: float
    price: float
    mid: float
    walk: pricing.Walk | None  # None when priced from the mid without a book
    cost: pricing.Cost


class Refusal(Exception):
    """A guard refused an order: `rule` and the numbers that broke it."""

    def __init__(self, rule: str, numbers: Mapping[str, object]) -> None:
        super().__init__(rule)
        self.rule = rule
        self.numbers = dict(numbers)


def plan_taker(
    cfg: ExecutionConfig,
    ins: Instrument,
    side: Side,
    amount: float,
    book: OrderBook | None,
    ticker_mid: float | None,
) -> TakerPlan:
    """Price and size one taker order, or raise Refusal with the rule and numbers. `cfg` is
    the execution settings of the order's symbol."""
    cap = cfg.max_slippage_bps
    walk: pricing.Walk | None = None
    if book is None:
        if not cfg.allow_no_book or ticker_mid is None or ticker_mid <= 0:
            raise Refusal("no_book", {"allow_no_book": cfg.allow_no_book})
        mid = ticker_mid
        price = marketable_limit(side, mid, cap, ins)
        slip = cap  # unknown depth: assume the worst the limit allows
    else:
        full = pricing.walk_book(book, side, amount)
        assert full is not None  # fresh books have a mid
        mid = full.mid
        walk = full
        if not full.complete or full.slippage_bps > cap:
            fit = pricing.fit_slippage(book, side, amount, cap, ins.amount_step)
            assert fit is not None
            numbers = {
                "requested": amount,
                "fits": fit.amount,
                "depth": full.depth,
                "slippage_bps": full.slippage_bps,
                "max_slippage_bps": cap,
                "mid": mid,
            }
            if cfg.on_slippage == "refuse":
                raise Refusal("max_slippage", numbers)
            if fit.amount < max(ins.min_amount, ins.amount_step) - 1e-12:
                raise Refusal("max_slippage", {**numbers, "on_slippage": "shrink"})
            walk = fit
        assert walk.worst_price is not None and walk.avg_price is not None
        # The limit is the last level the walk needs: the order takes exactly those levels
        # if the book is unchanged and never anything beyond them if it moved.
        price = ins.round_price(walk.worst_price, up=side is Side.BUY)
        slip = walk.slippage_bps
        amount = walk.amount
    notional = ins.notional_usd(amount, mid)
    cost = pricing.expected_cost(
        notional,
        ins.taker_fee,
        slip,
        notional,  # a delta-one contract removes its own notional of delta
        cfg.cost_sigma,
        cfg.cost_horizon_s,
    )
    refused = pricing.cost_refusal(cost, cfg.max_cost_bps, cfg.cost_risk_ratio)
    if refused is not None:
        raise Refusal(refused[0], refused[1])
    return TakerPlan(amount, price, mid, walk, cost)
