"""Arguments of `hedgebot ctl` (bot/io/ctl.py), declared with argparse alone so that the CLI
parses them without importing MQTT or pydantic."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from bot.cli_lazy import lazy

_DOC = """Send one command to a running bot over MQTT and print its reply.

The command goes to <prefix>/<bot_id>/cmd (signed when the config has mqtt.command_secret) and
the reply is read from <prefix>/<bot_id>/cmd/reply by command id.
Exit codes: 0 the bot did it, 1 the bot refused it (the reply says why), 2 usage or config
error (nothing sent), 3 no broker or no reply in time."""


def _add_common(p: argparse.ArgumentParser, default: Any) -> None:
    # The options work before and after the action; after it they override (SUPPRESS keeps the
    # value given before it when they are not repeated).
    def d(value: Any) -> Any:
        return argparse.SUPPRESS if default is argparse.SUPPRESS else value

    p.add_argument("--config", "-c", type=Path, default=d(None), help="TOML config of the bot")
    p.add_argument("--secrets", type=Path, default=d(None), help="dotenv with HEDGEBOT_* secrets")
    p.add_argument("--host", default=d(None), help="broker host (overrides the config)")
    p.add_argument("--port", type=int, default=d(None), help="broker port (overrides the config)")
    p.add_argument("--bot-id", default=d(None), help="bot id (default: the config's bot_id)")
    p.add_argument(
        "--timeout", type=float, default=d(10.0), help="seconds to wait for the reply (10)"
    )
    p.add_argument("--json", action="store_true", default=d(False), help="print the raw reply")


def register(subparsers: Any) -> None:
    """Add `ctl` and its actions; `func(args) -> exit code` runs bot.io.ctl.cmd_ctl."""
    ctl = subparsers.add_parser(
        "ctl",
        help="steer a running bot over MQTT (pause, resume, hedge-now, set, flatten, halt, ...)",
        description=_DOC,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_common(ctl, None)
    actions = ctl.add_subparsers(dest="action", required=True, metavar="ACTION")

    def action(name: str, help: str) -> argparse.ArgumentParser:
        p: argparse.ArgumentParser = actions.add_parser(name, help=help, description=help)
        _add_common(p, argparse.SUPPRESS)
        return p

    action("status", "the bot's state document: trading state, deltas, bands, feeds, orders")
    action("positions", "the bot's hedge positions (ledger) and live external positions")
    action("pause", "stop deciding and trading until resume")
    action("resume", "decide and trade again (a halt stays until set-trading-state active)")
    hedge = action("hedge-now", "re-hedge to target now, inside the band too")
    hedge.add_argument("underlying", nargs="?", help="one underlying, e.g. BTC (default: all)")
    setp = action("set", "change one setting live, validated like the config file")
    setp.add_argument("key", help="dotted settings path, e.g. hedge.BTC.band")
    setp.add_argument("value", help="new value: JSON (0.3, true, [1,2], null) or else a string")
    flat = action("flatten", "pause, then close the bot's hedge positions with reduce-only orders")
    flat.add_argument("underlying", nargs="?", help="one underlying (default: all)")
    flat.add_argument(
        "--confirm", action="store_true", help="required: flattening trades real money"
    )
    halt = action("halt", "kill switch: trading state halted until set-trading-state active")
    halt.add_argument("--reason", help="why, recorded with the halt")
    sts = action("set-trading-state", "active | reducing_only | halted")
    sts.add_argument("state", choices=["active", "reducing_only", "halted"])
    sts.add_argument("--reason", help="why, recorded with the change")
    action("reload", "re-read the bot's config file (a bad file keeps the running config)")
    ctl.set_defaults(func=lazy("bot.io.ctl:cmd_ctl"))
