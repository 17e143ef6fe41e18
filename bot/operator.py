"""What an operator can do to a running engine: pause, resume, hedge now, flatten, change a
setting, reload the config, set the trading state, report external positions, read the state.

A mixin of Engine (bot/engine.py): these methods implement the Controller protocol of
bot/control.py that the MQTT bridge and the CLI call, apart from the decision loop itself.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from bot.config import ConfigError, Settings, load_settings, with_setting
from bot.control import CommandError
from bot.core import risk
from bot.core.orders import OrderIntent, Side

if TYPE_CHECKING:
    import asyncio
    from pathlib import Path

    from bot.clock import Clock
    from bot.core.book import Columns, Exposure, LineKey
    from bot.core.instruments import Instrument
    from bot.core.market import Ticker
    from bot.core.policy import HedgeDecision
    from bot.engine import FeedState
    from bot.events import EventKind
    from bot.execution.executor import Executor
    from bot.execution.ledger import Ledger
    from bot.venues.base import Venue

# A flatten that needs more orders than this stops and raises an alert instead of looping.
FLATTEN_ATTEMPTS = 10


class OperatorControls:
    # What these controls use of the engine (set in Engine.__init__, or Engine's methods).
    settings: Settings
    config_path: Path | None
    secrets_file: Path | None
    clock: Clock
    venues: dict[str, Venue]
    executor: Executor
    ledger: Ledger
    catalog: dict[LineKey, Instrument]
    lines: dict[LineKey, Instrument]
    columns: dict[str, Columns]
    tickers: dict[LineKey, Ticker]
    feeds: dict[tuple[str, str], FeedState]
    halt_reasons: dict[str, str | None]
    last_decision: dict[str, HedgeDecision]
    paused: bool
    risk_limits: risk.RiskLimits
    risk_state: risk.RiskState
    # (source, symbol) -> (underlying, qty, delta_coin or None, expires_at wall ms)
    external: dict[tuple[str, str], tuple[str, float, float | None, int]]
    _force: set[str]
    _dirty: set[str]
    _wake: asyncio.Event
    _flattening: dict[str, int]  # underlying -> flatten orders sent so far
    # Who paused the bot, shown as trading_state_reason while it is paused.
    pause_reason: str = "operator"

    if TYPE_CHECKING:

        def _emit(self, kind: EventKind, name: str, **data: Any) -> None: ...

        def _mark_all_dirty(self) -> None: ...

        def exposure(self, underlying: str) -> Exposure | None: ...

        def halt_reason(self, underlying: str) -> str | None: ...

        def _submit(
            self, account: str, intent: OrderIntent, ticker: Ticker, ins: Instrument
        ) -> None: ...

    def set_external_position(
        self,
        source: str,
        symbol: str,
        underlying: str,
        qty: float,
        delta_coin: float | None,
        expires_at_ms: int,
    ) -> dict[str, Any]:
        """Count a position held outside the bot's venues until it expires (wall-clock ms).
        Without `delta_coin` the symbol must be an instrument a configured venue lists, so it
        can be valued like our own; qty 0 removes it."""
        key = (source, symbol)
        if underlying not in self.settings.hedge:
            raise CommandError(f"underlying {underlying!r} is not hedged by this bot")
        if qty == 0 and (delta_coin is None or delta_coin == 0):
            self.external.pop(key, None)
        else:
            if delta_coin is None:
                listed = [
                    (acc, i)
                    for (acc, sym), i in self.catalog.items()
                    if sym == symbol and acc in self.venues
                ]
                if not listed:
                    raise CommandError(
                        f"symbol {symbol!r} is not listed by any venue; send delta_coin instead"
                    )
                account, ins = listed[0]
                if ins.underlying != underlying:
                    raise CommandError(f"{symbol!r} is a {ins.underlying} instrument")
                # the venue's own line is watched for the market data that values the position
                self.lines.setdefault((account, symbol), ins)
                self.lines.setdefault((f"external:{source}", symbol), ins)
                self.columns.pop(underlying, None)
            self.external[key] = (underlying, qty, delta_coin, expires_at_ms)
        self._emit(
            "state",
            "external.position",
            source=source,
            symbol=symbol,
            underlying=underlying,
            qty=qty,
            delta_coin=delta_coin,
            expires_at_ms=expires_at_ms,
        )
        self._dirty.add(underlying)
        self._wake.set()
        return {"external": len(self.external)}

    def set_trading_state(self, state: str, reason: str) -> dict[str, Any]:
        """active | reducing_only | halted, from an operator, the kill file or the margin watch."""
        try:
            target = risk.TradingState(state)
        except ValueError:
            raise CommandError(
                f"trading state must be one of {[t.value for t in risk.TradingState]}, "
                f"got {state!r}"
            ) from None
        before = self.risk_state.trading_state
        self.risk_state = risk.set_trading_state(self.risk_state, target, reason)
        if before is not target:
            self._emit(
                "state", "trading.state", state=target.value, before=before.value, reason=reason
            )
        self._mark_all_dirty()
        result: dict[str, Any] = {"trading_state": target.value, "reason": reason}
        notes = [f"was already {target.value}"] if before is target else []
        if self.paused and target is not risk.TradingState.HALTED:
            notes.append("the bot is paused: it trades again only after resume")
        return _noted(result, notes)

    def _check_kill_file(self) -> None:
        path = self.settings.risk.halt_file
        halted = self.risk_state.trading_state is risk.TradingState.HALTED
        if path is not None and path.exists() and not halted:
            self.set_trading_state("halted", "kill_file")
        elif (
            halted
            and self.risk_state.state_reason == "kill_file"
            and (path is None or not path.exists())
        ):
            self.set_trading_state("active", "kill_file_removed")

    def pause(self) -> dict[str, Any]:
        was = self.paused
        self.paused = True
        self.pause_reason = "operator"
        self._emit("state", "control.paused")
        self._mark_all_dirty()
        return _noted({"paused": True}, ["was already paused"] if was else [])

    def resume(self) -> dict[str, Any]:
        was = self.paused
        self.paused = False
        self._flattening.clear()  # back to hedging: the policy decides again
        self._emit("state", "control.resumed")
        self._mark_all_dirty()
        trading = self.risk_state.trading_state
        notes = [] if was else ["was not paused"]
        if trading is not risk.TradingState.ACTIVE:
            notes.append(self._trading_note())
        return _noted({"paused": False, "trading_state": trading.value}, notes)

    def hedge_now(self, underlying: str | None) -> dict[str, Any]:
        """Force a hedge to target on the next decision. Refused when nothing would trade (paused,
        halted, or every target blocked), so an ok reply means a decision is coming."""
        targets = self._underlyings(underlying)
        if self.paused:
            raise CommandError("the bot is paused: hedge-now would not trade; resume first")
        if self.risk_state.trading_state is risk.TradingState.HALTED:
            raise CommandError(f"hedge-now would not trade: {self._trading_note()}")
        blocked = {u: r for u in targets if (r := self.halt_reason(u)) is not None}
        if len(blocked) == len(targets):
            why = ", ".join(f"{u}: {r}" for u, r in blocked.items())
            raise CommandError(f"hedge-now would not trade: {why}")
        go = [u for u in targets if u not in blocked]
        self._force.update(go)
        self._dirty.update(go)
        self._wake.set()
        result: dict[str, Any] = {"hedge_now": go}
        if blocked:
            result["skipped"] = blocked
        notes = []
        if self.risk_state.trading_state is not risk.TradingState.ACTIVE:
            notes.append(self._trading_note())
        busy = [u for u in go if self.ledger.has_unsettled(u)]
        if busy:
            notes.append(f"order in flight for {', '.join(busy)}: hedges once it settles")
        return _noted(result, notes)

    def _trading_note(self) -> str:
        state, reason = self.risk_state.trading_state, self.risk_state.state_reason or "no reason"
        if state is risk.TradingState.HALTED:
            return (
                f"trading is still halted ({reason}): no order passes the risk gate "
                "until set-trading-state active"
            )
        if state is risk.TradingState.REDUCING_ONLY:
            return f"trading is reducing_only ({reason}): only orders that shrink a position pass"
        return f"trading is {state.value} ({reason})"

    def positions(self) -> dict[str, Any]:
        """The hedge positions the ledger holds and the external positions not yet expired."""
        now = time.time_ns() // 1_000_000  # external expiries are wall-clock ms
        held = []
        for (account, symbol), qty in sorted(self.ledger.positions.items()):
            ins = self.catalog.get((account, symbol))
            # Float residue of fills (1e-15) below the amount step is flat, as flatten sees it.
            if (ins.round_amount(abs(qty)) if ins is not None else qty) != 0.0:
                und = ins.underlying if ins is not None else None
                held.append({"account": account, "symbol": symbol, "underlying": und, "qty": qty})
        keys = ("underlying", "qty", "delta_coin", "expires_at_ms")
        external = [
            {"source": src, "symbol": sym, **dict(zip(keys, v, strict=True))}
            for (src, sym), v in sorted(self.external.items())
            if v[3] > now
        ]
        return {"positions": held, "external": external}

    async def flatten(self, underlying: str | None) -> dict[str, Any]:
        """Close the bot's hedge positions with reduce-only orders and pause, so the closed
        hedges are not put back on. Options and spot the operator holds are left alone.
        Flattening goes on until the position is flat: an order that fills only in part is
        followed by another once it settles, up to FLATTEN_ATTEMPTS orders."""
        targets = self._underlyings(underlying)
        self.pause()
        self.pause_reason = "operator: flatten"
        sent = []
        for u in targets:
            self._flattening[u] = 0
            order = self._flatten_step(u)
            if order is not None:
                sent.append(order)
        return {"flatten": sent, "paused": True}

    def _flatten_step(self, underlying: str) -> dict[str, Any] | None:
        """One reduce-only order toward a flat hedge position, once nothing is in flight."""
        if self.ledger.has_unsettled(underlying):
            return None  # wait for the outcome of what is working
        h = self.settings.hedge[underlying]
        key = (h.account, h.instrument)
        ins, ticker = self.catalog[key], self.tickers.get(key)
        qty = self.ledger.positions.get(key, 0.0)
        amount = ins.round_amount(abs(qty))
        attempts = self._flattening.get(underlying, 0)
        if amount == 0.0 or attempts >= FLATTEN_ATTEMPTS:
            del self._flattening[underlying]
            done = amount == 0.0
            self._emit(
                "state" if done else "alert",
                "flatten.done" if done else "flatten.gave_up",
                underlying=underlying,
                position=qty,
                orders=attempts,
            )
            return None
        if ticker is None:
            return None
        self._flattening[underlying] = attempts + 1
        intent = OrderIntent(
            self.executor.new_client_id(),
            underlying,
            h.instrument,
            Side.of(-qty),
            amount,
            "flatten",
            reduce_only=True,
        )
        self._submit(h.account, intent, ticker, ins)
        return {"underlying": underlying, "client_id": intent.client_id, "amount": amount}

    def set_setting(self, path: str, value: Any) -> dict[str, Any]:
        try:
            new = with_setting(self.settings, path, value)
        except ConfigError as e:
            raise CommandError(e.render()) from None
        self._apply(new)
        self._emit("state", "config.set", path=path, value=value)
        return {"path": path, "value": value}

    def reload(self) -> dict[str, Any]:
        if self.config_path is None:
            raise CommandError("the daemon was started without a config file")
        try:
            new = load_settings(self.config_path, self.secrets_file)
        except ConfigError as e:
            self._emit("alert", "config.reload_rejected", errors=e.render())
            raise CommandError(e.render()) from None
        ignored = [
            s
            for s in ("bot_id", "accounts", "sim", "positions")
            if getattr(new, s) != getattr(self.settings, s)
        ]
        if set(new.hedge) != set(self.settings.hedge) or any(
            (new.hedge[u].account, new.hedge[u].instrument)
            != (self.settings.hedge[u].account, self.settings.hedge[u].instrument)
            for u in new.hedge
        ):
            raise CommandError(
                "reload cannot add or remove underlyings or change hedge "
                "instruments; restart the daemon for that"
            )
        kept = new.model_copy(update={s: getattr(self.settings, s) for s in ignored})
        self._apply(kept)
        self._emit("state", "config.reloaded", needs_restart=ignored)
        return {"reloaded": True, "needs_restart": ignored}

    def _apply(self, new: Settings) -> None:
        self.settings = new
        self.executor.cfg = new.execution
        self.risk_limits = risk.RiskLimits.from_config(new.risk)
        self._mark_all_dirty()

    def state(self) -> dict[str, Any]:
        now = self.clock.now_ms()
        unders: dict[str, Any] = {}
        for u, h in self.settings.hedge.items():
            exp = self.exposure(u)
            d = self.last_decision.get(u)
            unders[u] = {
                "delta_coin": exp.delta_coin if exp else None,
                "delta_usd": exp.delta_usd if exp else None,
                "gamma_coin": exp.gamma_coin if exp else None,
                "in_flight_coin": exp.in_flight_coin if exp else None,
                "price": exp.price if exp else None,
                "unit": h.unit,
                "target": h.target + h.bias,
                "band": h.band,
                "hedge_instrument": h.instrument,
                "halted": self.halt_reasons.get(u),
                "last_decision": d.reason if d else None,
            }
        trading = self.risk_state.trading_state
        modes = {a.mode for a in self.settings.accounts.values()}
        return {
            "bot_id": self.settings.bot_id,
            "ts_ms": now,
            "mode": modes.pop() if len(modes) == 1 else "mixed",
            # One word for the fleet table: a halt outranks a pause, which outranks the rest.
            "trading_state": (
                "paused"
                if self.paused and trading is not risk.TradingState.HALTED
                else trading.value
            ),
            # While paused (and not halted) the pause is what stops trading: say who paused.
            "trading_state_reason": (
                self.pause_reason
                if self.paused and trading is not risk.TradingState.HALTED
                else self.risk_state.state_reason
            ),
            "paused": self.paused,
            "external_positions": len(self.external),
            "breaker_open": self.risk_state.breaker_open,
            "accounts": {
                n: {"exchange": a.exchange, "mode": a.mode}
                for n, a in self.settings.accounts.items()
            },
            "underlyings": unders,
            "feeds": {
                f"{a}:{s}": {"ok": f.error is None, "age_ms": now - f.last_ok_ms, "error": f.error}
                for (a, s), f in self.feeds.items()
            },
            "open_orders": [
                {
                    "client_id": o.intent.client_id,
                    "symbol": o.intent.symbol,
                    "side": o.intent.side.value,
                    "amount": o.intent.amount,
                    "status": o.status.value,
                    "filled": o.booked,
                }
                for o in self.ledger.unsettled()
            ],
        }

    def _underlyings(self, underlying: str | None) -> list[str]:
        if underlying is None:
            return sorted(self.settings.hedge)
        if underlying not in self.settings.hedge:
            raise CommandError(
                f"unknown underlying {underlying!r}; hedged: "
                f"{', '.join(sorted(self.settings.hedge))}"
            )
        return [underlying]


def _noted(result: dict[str, Any], notes: list[str]) -> dict[str, Any]:
    """The reply with a `note` saying what the operator might not expect, when there is one."""
    if notes:
        result["note"] = "; ".join(notes)
    return result
