"""Arguments of `hedgebot markets` (bot/venues/markets_cli.py), declared with argparse alone so
that the CLI parses them without importing ccxt or the config."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.cli_lazy import lazy


def register(sub: Any) -> None:
    p = sub.add_parser(
        "markets", help="show and check the contract units of the symbols the config uses"
    )
    p.add_argument("--config", "-c", type=Path, required=True, help="TOML config file")
    p.add_argument("--secrets", type=Path, help="dotenv file with HEDGEBOT_* secrets")
    p.add_argument(
        "--symbol",
        action="append",
        default=[],
        help="also show (and check) this ccxt symbol on every real-exchange account",
    )
    p.set_defaults(func=lazy("bot.venues.markets_cli:cmd_markets"))
