"""What an operator reads of a running daemon: the retained state document (bot/control.py
`state`) and the positions held (`positions`). Read-only views over the hedger."""

from __future__ import annotations

from typing import Any

from bot.clock import wall_ms
from bot.core import risk
from bot.hedger.hedger import Hedger


def daemon_state(hedger: Hedger, pause_reason: str) -> dict[str, Any]:
    """The state document; `pause_reason` is who paused, reported while paused."""
    settings = hedger.settings
    now = hedger.clock.now_ms()
    unders = {u: _underlying_state(hedger, u, now) for u in settings.hedge}
    trading = hedger.risk.state.trading_state
    paused = hedger.halts.paused
    pause_rules = paused and trading is not risk.TradingState.HALTED
    modes = {a.mode for a in settings.accounts.values()}
    return {
        "bot_id": settings.bot_id,
        "ts_ms": now,
        "mode": modes.pop() if len(modes) == 1 else "mixed",
        # One word for the fleet table: a halt outranks a pause, which outranks the rest.
        "trading_state": "paused" if pause_rules else trading.value,
        # While paused (and not halted) the pause is what stops trading: say who paused.
        "trading_state_reason": pause_reason if pause_rules else hedger.risk.state.state_reason,
        "paused": paused,
        "external_positions": len(hedger.view.external),
        "breaker_open": hedger.risk.state.breaker_open,
        "accounts": {
            n: {"exchange": a.exchange, "mode": a.mode} for n, a in settings.accounts.items()
        },
        "underlyings": unders,
        # scenario grid and 1-day 99% VaR per underlying and for the book (riskview.py);
        # null numbers until there is history enough, never made up
        "risk": hedger.riskview.report or None,
        "feeds": {
            f"{a}:{s}": {"ok": f.error is None, "age_ms": now - f.last_ok_ms, "error": f.error}
            for (a, s), f in hedger.feeds.feeds.items()
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
            for o in hedger.ledger.unsettled()
        ],
        # Orders with no final state from the venue: their underlying stays blocked until
        # the venue answers or an operator runs resolve-order.
        "stuck_orders": hedger.executor.stuck.listing(now),
    }


def _underlying_state(hedger: Hedger, u: str, now: int) -> dict[str, Any]:
    h = hedger.settings.hedge[u]
    exp = hedger.exposure(u)
    d = hedger.last_decision.get(u)
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
            d.bounds.as_dict() if d else {"unit": h.unit, "target": h.target + h.bias, "band": None}
        ),
        "policy": d.policy if d else None,
        "hedge_instrument": h.instrument,
        # each routing candidate's position, limit, funding and basis ([] without)
        "routing": hedger.router.state(u, exp.price if exp else None, now),
        "halted": hedger.halts.reasons.get(u),
        "last_decision": d.reason if d else None,
        # beta, corr, residual std and what is mapped (README "Cross hedges"); null
        # for an underlying with no cross hedge
        "cross": hedger.cross.report(u),
    }


def held_positions(hedger: Hedger) -> dict[str, Any]:
    """The hedge positions the ledger holds and the external positions not yet expired."""
    now = wall_ms()  # external expiries are wall-clock ms
    held = []
    for (account, symbol), qty in sorted(hedger.ledger.positions.items()):
        ins = hedger.catalog.get((account, symbol))
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
        for (src, sym), e in sorted(hedger.view.external.items())
        if e.expires_at_ms > now
    ]
    return {"positions": held, "external": external}
