"""What an operator can ask of a running daemon. The engine implements it; the MQTT bridge and
the CLI call it. Each call returns a JSON-able result or raises CommandError with a clear
message."""

from __future__ import annotations

from typing import Any, Protocol


class CommandError(Exception):
    """A command that was understood but refused (bad value, wrong state)."""


class Controller(Protocol):
    def pause(self) -> dict[str, Any]: ...

    def resume(self) -> dict[str, Any]: ...

    def hedge_now(self, underlying: str | None) -> dict[str, Any]: ...

    async def flatten(self, underlying: str | None) -> dict[str, Any]: ...

    def set_setting(self, path: str, value: Any) -> dict[str, Any]:
        """Change one setting live (dotted path, e.g. 'hedge.BTC.policy.band'), validated exactly as
        the config file is; raises CommandError naming the field, the value and the rule."""
        ...

    def set_trading_state(self, state: str, reason: str) -> dict[str, Any]:
        """active | reducing_only | halted (the kill switch); raises CommandError on any other."""
        ...

    def reload(self) -> dict[str, Any]:
        """Re-read the config file; a bad file keeps the running config and raises CommandError."""
        ...

    def resolve_order(self, client_id: str, status: str, confirm: bool) -> dict[str, Any]:
        """Settle a stuck order (state: stuck_orders) as filled | cancelled | rejected, by the
        operator's word; needs confirm true; journaled. CommandError when not stuck."""
        ...

    def positions(self) -> dict[str, Any]:
        """The hedge positions the ledger holds (account, symbol, underlying, qty) and the live
        external positions."""
        ...

    def state(self) -> dict[str, Any]:
        """The retained state document: delta per underlying, targets, bands, trading state,
        mode per account, feed health, open orders, stuck orders."""
        ...
