"""What an operator can do to a running daemon: pause, resume, hedge now, flatten, change a
setting, reload the config, set the trading state, report external positions, read the state.

A component over the hedger (it holds references, it is not part of the engine): it implements
the Controller protocol of bot/control.py that the MQTT bridge and the CLI call.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

from bot.clock import wall_ms
from bot.config import ConfigError, Settings, load_settings
from bot.config_diff import changes, flatten
from bot.config_set import with_setting
from bot.control import CommandError
from bot.core import risk
from bot.core.book import LineKey
from bot.core.external import External, check_external
from bot.core.orders import OrderStatus
from bot.hedger.flatten import flatten_step
from bot.hedger.hedger import Hedger

# Sections a reload cannot change while running: they keep their running values (reported).
RESTART_SECTIONS = ("bot_id", "accounts", "sim", "positions", "journal", "mqtt", "metrics", "log")

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
        if self.hedger.paused and target is not risk.TradingState.HALTED:
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
        was = h.paused
        h.paused = True
        self.pause_reason = "operator"
        h.emit("state", "control.paused")
        h.mark_all_dirty()
        return _noted({"paused": True}, ["was already paused"] if was else [])

    def resume(self) -> dict[str, Any]:
        h = self.hedger
        was = h.paused
        h.paused = False
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
        if h.paused:
            raise CommandError("the bot is paused: hedge-now would not trade; resume first")
        if h.risk.state.trading_state is risk.TradingState.HALTED:
            raise CommandError(f"hedge-now would not trade: {self._trading_note()}")
        blocked = {u: r for u in targets if (r := h.halt_reason(u)) is not None}
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
        h = self.hedger
        now = wall_ms()  # external expiries are wall-clock ms
        held = []
        for (account, symbol), qty in sorted(h.ledger.positions.items()):
            ins = h.catalog.get((account, symbol))
            # Float residue of fills (1e-15) below the amount step is flat, as flatten sees it.
            if (ins.round_amount(abs(qty)) if ins is not None else qty) != 0.0:
                und = ins.underlying if ins is not None else None
                held.append({"account": account, "symbol": symbol, "underlying": und, "qty": qty})
        external = [
            {
                "source": src,
                "symbol": sym,
                "underlying": e.underlying,
                "qty": e.qty,
                "delta_coin": e.delta_coin,
                "expires_at_ms": e.expires_at_ms,
            }
            for (src, sym), e in sorted(h.view.external.items())
            if e.expires_at_ms > now
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
        if set(new.hedge) != set(self.settings.hedge) or any(
            # the lines a hedge may trade (instrument and routing candidates): streams and books
            # are set up for them at start; their limits apply at once
            new.hedge[u].lines() != self.settings.hedge[u].lines()
            for u in new.hedge
        ):
            self.hedger.emit(
                "alert", "config.reload_rejected", errors="hedged underlyings or instruments"
            )
            raise CommandError(
                "reload cannot add or remove underlyings or change hedge "
                "instruments or routing candidates; restart the daemon for that"
            )
        ignored = [s for s in RESTART_SECTIONS if getattr(new, s) != getattr(self.settings, s)]
        kept = new.model_copy(update={s: getattr(self.settings, s) for s in ignored})
        if kept.risk.halt_file != self.settings.risk.halt_file:
            # The kill switch moves only with a restart: `hedgebot halt` must hit what is watched.
            ignored.append("risk.halt_file")
            risk_kept = kept.risk.model_copy(update={"halt_file": self.settings.risk.halt_file})
            kept = kept.model_copy(update={"risk": risk_kept})
        applied = changes(self.settings, kept)
        file_values = flatten(kept.model_dump(mode="json"))
        dropped = [
            {"path": path, "set": value, "file": file_values.get(path)}
            for path, value in self._live_sets.items()
            if file_values.get(path) != value
        ]
        self._live_sets.clear()
        self.hedger.apply(kept)
        self.file_settings = kept
        self.hedger.emit(
            "state",
            "config.reloaded",
            needs_restart=ignored,
            changes=applied,
            dropped_sets=dropped,
        )
        return {
            "reloaded": True,
            "changes": applied,
            "needs_restart": ignored,
            "dropped_sets": dropped,
        }

    def state(self) -> dict[str, Any]:
        now = self.hedger.clock.now_ms()
        unders = {u: self._underlying_state(u, now) for u in self.settings.hedge}
        trading = self.hedger.risk.state.trading_state
        modes = {a.mode for a in self.settings.accounts.values()}
        return {
            "bot_id": self.settings.bot_id,
            "ts_ms": now,
            "mode": modes.pop() if len(modes) == 1 else "mixed",
            # One word for the fleet table: a halt outranks a pause, which outranks the rest.
            "trading_state": (
                "paused"
                if self.hedger.paused and trading is not risk.TradingState.HALTED
                else trading.value
            ),
            # While paused (and not halted) the pause is what stops trading: say who paused.
            "trading_state_reason": (
                self.pause_reason
                if self.hedger.paused and trading is not risk.TradingState.HALTED
                else self.hedger.risk.state.state_reason
            ),
            "paused": self.hedger.paused,
            "external_positions": len(self.hedger.view.external),
            "breaker_open": self.hedger.risk.state.breaker_open,
            "accounts": {
                n: {"exchange": a.exchange, "mode": a.mode}
                for n, a in self.settings.accounts.items()
            },
            "underlyings": unders,
            # scenario grid and 1-day 99% VaR per underlying and for the book (riskview.py);
            # null numbers until there is history enough, never made up
            "risk": self.hedger.riskview.report or None,
            "feeds": {
                f"{a}:{s}": {"ok": f.error is None, "age_ms": now - f.last_ok_ms, "error": f.error}
                for (a, s), f in self.hedger.feeds.feeds.items()
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
                for o in self.hedger.ledger.unsettled()
            ],
            # Orders with no final state from the venue: their underlying stays blocked until
            # the venue answers or an operator runs resolve-order.
            "stuck_orders": self.hedger.executor.stuck.listing(now),
        }

    def _underlying_state(self, u: str, now: int) -> dict[str, Any]:
        h = self.settings.hedge[u]
        exp = self.hedger.exposure(u)
        d = self.hedger.last_decision.get(u)
        return {
            "delta_coin": exp.delta_coin if exp else None,
            "delta_usd": exp.delta_usd if exp else None,
            "gamma_coin": exp.gamma_coin if exp else None,
            "vega_usd": exp.vega_usd if exp else None,
            "theta_usd": exp.theta_usd if exp else None,
            "in_flight_coin": exp.in_flight_coin if exp else None,
            "price": exp.price if exp else None,
            # the band the policy used last: it may move with greeks or time
            **(
                d.bounds.as_dict()
                if d
                else {"unit": h.unit, "target": h.target + h.bias, "band": None}
            ),
            "policy": d.policy if d else None,
            "hedge_instrument": h.instrument,
            # each routing candidate's position, limit, funding and basis ([] without)
            "routing": self.hedger.router.state(u, exp.price if exp else None, now),
            "halted": self.hedger.halt_reasons.get(u),
            "last_decision": d.reason if d else None,
            # beta, corr, residual std and what is mapped (README "Cross hedges"); null
            # for an underlying with no cross hedge
            "cross": self.hedger.cross.report(u),
        }

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
