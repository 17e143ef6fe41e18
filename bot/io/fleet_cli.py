"""Arguments of `hedgebot status` and `hedgebot fleet` (bot/io/fleet.py), declared with argparse
alone so that the CLI parses them without importing MQTT or rich."""

from __future__ import annotations

import argparse
from typing import Any

from bot.cli_lazy import lazy

_DOC = (
    "Read the retained state that bots publish on MQTT: `status` for one bot, `fleet` for every "
    "bot on the broker. Both only read (a `viewer` broker user suffices)."
)


def _add_common(p: argparse.ArgumentParser, timeout_help: str) -> None:
    p.add_argument("--config", default=None, help="take broker settings (and bot_id) from here")
    p.add_argument("--host", default=None, help="broker host (overrides the config)")
    p.add_argument("--port", type=int, default=None, help="broker port (overrides the config)")
    p.add_argument("--bot-id", default=None, help="bot id (default: the config's bot_id)")
    p.add_argument("--timeout", type=float, default=None, help=timeout_help)
    p.add_argument("--watch", action="store_true", help="keep updating until Ctrl-C")


def register(subparsers: Any) -> None:
    """Add `status` and `fleet`; each sets `func(args) -> exit code`."""
    status = subparsers.add_parser(
        "status", help="show the retained MQTT state of one bot", description=_DOC
    )
    _add_common(status, "seconds to wait for the retained state (default 5)")
    status.set_defaults(func=lazy("bot.io.fleet:cmd_status"))
    fleet = subparsers.add_parser(
        "fleet", help="table of every bot publishing to the broker", description=_DOC
    )
    _add_common(fleet, "seconds to collect retained states (default 2)")
    fleet.set_defaults(func=lazy("bot.io.fleet:cmd_fleet"))
