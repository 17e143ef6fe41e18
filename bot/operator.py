"""What an operator can do to a running daemon: pause, resume, hedge now, flatten, change a
setting, reload the config, set the trading state, report external positions, read the state.

A component over the hedger (it holds references, it is not part of the engine): it implements
the Controller protocol of bot/control.py that the MQTT bridge and the CLI call. The state
document and positions it reports are read in bot/operator_state.py; what a reload keeps,
applies and drops is decided in bot/config_reload.py.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.clock import wall_ms
from bot.config import ConfigError, Settings, load_settings
from bot.config_reload import hedges_differ, reload_of
from bot.config_set import with_setting
from bot.control import CommandError
from bot.core import risk
from bot.core.book import LineKey
from bot.core.external import External, check_external
from bot.core.orders import OrderStatus
from bot.hedger.flatten import flatten_step
from bot.hedger.hedger import Hedger
from bot.operator_state import daemon_state, held_positions

# What an operator may say a stuck order ended as.
RESOLVABLE = frozenset({OrderStatus.FILLED, OrderStatus.CANCELLED, OrderStatus.REJECTED})


class OperatorControls:
    def __init__(
        self,
        hedger: Hedger,
        watch_ticker: Callable[[LineKey], None],
        config_path: Path | None = None,
        secrets_file: Path | None = None,
    ) -> None:
        """`watch_ticker`: start the market data of a line an external position brought in."""
        self.hedger = hedger
        self._watch_ticker = watch_ticker
        self.config_path = config_path
        self.secrets_file = secrets_file
        # The config file as last loaded: `set` may tighten its risk limits, not loosen them.
        self.file_settings = hedger.settings
        self._live_sets: dict[str, Any] = {}  # `set` changes since the file was last read
        self.pause_reason = "operator"  # who paused: trading_state_reason while paused

    @property
    def settings(self) -> Settings:
        return self.hedger.settings

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
        view = self.hedger.view
        held = [i for (acc, sym), i in view.catalog.items() if sym == symbol and acc in view.venues]
        coin_size = held[0].contract_size if held and not held[0].is_inverse else None
        refused = check_external(
            self.settings.external,
            view.external,
            key,
            underlying,
            qty,
            delta_coin,
            expires_at_ms,
            wall_ms(),
            None if coin_size is None else qty * coin_size,
        )
        if refused is not None:
            raise CommandError(refused)
        if qty == 0 and (delta_coin is None or delta_coin == 0):
            self.hedger.view.external.pop(key, None)
        else:
            if delta_coin is None:
                self._watch_listed(source, symbol, underlying)
            self.hedger.view.external[key] = External(underlying, qty, delta_coin, expires_at_ms)
        self.hedger.emit(
            "state",
            "external.position",
            source=source,
            symbol=symbol,
            underlying=underlying,
            qty=qty,
            delta_coin=delta_coin,
            expires_at_ms=expires_at_ms,
        )
        self.hedger.mark_dirty(underlying)
        return {"external": len(self.hedger.view.external)}

    def _watch_listed(self, source: str, symbol: str, underlying: str) -> None:
        """An external position without `delta_coin` is valued like our own: its symbol must be
        listed by a configured venue, whose line is watched for the market data."""
        listed = [
            (acc, i)
            for (acc, sym), i in self.hedger.catalog.items()
            if sym == symbol and acc in self.hedger.view.venues
        ]
        if not listed:
            raise CommandError(
                f"symbol {symbol!r} is not listed by any venue; send delta_coin instead"
            )
        account, ins = listed[0]
        if ins.underlying != underlying:
            raise CommandError(f"{symbol!r} is a {ins.underlying} instrument")
        # the venue's own line is watched for the market data that values the position
        self.hedger.view.add_line((account, symbol), ins)
        self.hedger.view.add_line((f"external:{source}", symbol), ins)
        self._watch_ticker((account, symbol))

    def set_trading_state(self, state: str, reason: str) -> dict[str, Any]:
        """active | reducing_only | halted, from an operator, the kill file or the margin watch."""
        try:
            target = risk.TradingState(state)
        except ValueError:
            raise CommandError(
                f"trading state must be one of {[t.value for t in risk.TradingState]}, "
                f"got {state!r}"
            ) from None
        before = self.hedger.risk.state.trading_state
        self.hedger.risk.state = risk.set_trading_state(self.hedger.risk.state, target, reason)
        if before is not target:
            self.hedger.emit(
                "state", "trading.state", state=target.value, before=before.value, reason=reason
            )
        self.hedger.mark_all_dirty()
        result: dict[str, Any] = {"trading_state": target.value, "reason": reason}
        notes = [f"was already {target.value}"] if before is target else []
        if self.hedger.halts.paused and target is not risk.TradingState.HALTED:
            notes.append("the bot is paused: it trades again only after resume")
        return _noted(result, notes)

    def check_kill_file(self) -> None:
        path = self.settings.risk.halt_file
        halted = self.hedger.risk.state.trading_state is risk.TradingState.HALTED
        if path is not None and path.exists() and not halted:
            self.set_trading_state("halted", "kill_file")
        elif (
            halted
            and self.hedger.risk.state.state_reason == "kill_file"
            and (path is None or not path.exists())
        ):
            self.set_trading_state("active", "kill_file_removed")

    def pause(self) -> dict[str, Any]:
        h = self.hedger
        was = h.halts.paused
        h.halts.paused = True
        self.pause_reason = "operator"
        h.emit("state", "control.paused")
        h.mark_all_dirty()
        return _noted({"paused": True}, ["was already paused"] if was else [])

    def resume(self) -> dict[str, Any]:
        h = self.hedger
        was = h.halts.paused
        h.halts.paused = False
        h.flattening.clear()  # back to hedging: the policy decides again
        h.emit("state", "control.resumed")
        h.mark_all_dirty()
        trading = h.risk.state.trading_state
        notes = [] if was else ["was not paused"]
        if trading is not risk.TradingState.ACTIVE:
            notes.append(self._trading_note())
        return _noted({"paused": False, "trading_state": trading.value}, notes)

    def hedge_now(self, underlying: str | None) -> dict[str, Any]:
        targets = self._underlyings(underlying)
        h = self.hedger
        if h.halts.paused:
            raise CommandError("the bot is paused: hedge-now would not trade; resume first")
        if h.risk.state.trading_state is risk.TradingState.HALTED:
            raise CommandError(f"hedge-now would not trade: {self._trading_note()}")
        blocked = {u: r for u in targets if (r := h.halts.reason(u)) is not None}
        if len(blocked) == len(targets):
            why = ", ".join(f"{u}: {r}" for u, r in blocked.items())
            raise CommandError(f"hedge-now would not trade: {why}")
        go = [u for u in targets if u not in blocked]
        h.force.update(go)
        for u in go:
            h.mark_dirty(u)
        result: dict[str, Any] = {"hedge_now": go}
        if blocked:
            result["skipped"] = blocked
        notes = []
        if h.risk.state.trading_state is not risk.TradingState.ACTIVE:
            notes.append(self._trading_note())
        busy = [u for u in go if h.ledger.has_unsettled(u)]
        if busy:
            notes.append(f"order in flight for {', '.join(busy)}: hedges once it settles")
        return _noted(result, notes)

    def _trading_note(self) -> str:
        rs = self.hedger.risk.state
        state, reason = rs.trading_state, rs.state_reason or "no reason"
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
        return held_positions(self.hedger)

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
            self.hedger.flattening[u] = 0
            order = flatten_step(self.hedger, u)
            if order is not None:
                sent.append(order)
        return {"flatten": sent, "paused": True}

    def set_setting(self, path: str, value: Any) -> dict[str, Any]:
        try:
            new = with_setting(self.settings, path, value, self.file_settings)
        except ConfigError as e:
            raise CommandError(e.render()) from None
        self._live_sets[path] = value
        self.hedger.apply(new)
        self.hedger.emit("state", "config.set", path=path, value=value)
        return {"path": path, "value": value}

    def reload(self) -> dict[str, Any]:
        """Re-read the config file (SIGHUP, MQTT `reload`, or the file changed on disk). The new
        file is validated in full first; a bad one keeps the running config. Thresholds,
        policies, limits and executor settings apply at once; restart-only sections keep their
        running values and are reported, never half-applied. Live `set` changes end here: the
        file is the truth again, and the reply lists each one the file does not repeat."""
        if self.config_path is None:
            raise CommandError("the daemon was started without a config file")
        try:
            new = load_settings(self.config_path, self.secrets_file)
        except ConfigError as e:
            self.hedger.emit("alert", "config.reload_rejected", errors=e.render())
            raise CommandError(e.render()) from None
        if hedges_differ(self.settings, new):
            self.hedger.emit(
                "alert", "config.reload_rejected", errors="hedged underlyings or instruments"
            )
            raise CommandError(
                "reload cannot add or remove underlyings or change hedge "
                "instruments or routing candidates; restart the daemon for that"
            )
        done = reload_of(self.settings, new, self._live_sets)
        self._live_sets.clear()
        self.hedger.apply(done.settings)
        self.file_settings = done.settings
        self.hedger.emit(
            "state",
            "config.reloaded",
            needs_restart=done.needs_restart,
            changes=done.changes,
            dropped_sets=done.dropped_sets,
        )
        return {
            "reloaded": True,
            "changes": done.changes,
            "needs_restart": done.needs_restart,
            "dropped_sets": done.dropped_sets,
        }

    def state(self) -> dict[str, Any]:
        return daemon_state(self.hedger, self.pause_reason)

    def resolve_order(self, client_id: str, status: str, confirm: bool) -> dict[str, Any]:
        """Settle a stuck order by the operator's word (checked at the venue by hand): filled,
        cancelled or rejected. Only the fills already booked count; a reconciliation is asked
        for so the position comes from the venue. Journaled; hedging its underlying resumes."""
        if confirm is not True:
            raise CommandError("resolve-order needs confirm: true")
        try:
            target = OrderStatus(status)
        except ValueError:
            target = None
        if target not in RESOLVABLE:
            raise CommandError(
                f"status must be one of {sorted(s.value for s in RESOLVABLE)}, got {status!r}"
            )
        assert target is not None
        try:
            order = self.hedger.executor.resolve(client_id, target, "operator")
        except ValueError as e:
            raise CommandError(str(e)) from None
        self.hedger.request_reconcile()
        self.hedger.mark_dirty(order.intent.underlying)
        return {"client_id": client_id, "status": order.status.value, "booked": order.booked}

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
