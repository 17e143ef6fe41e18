"""`hedgebot halt`: the kill switch from the command line.

    hedgebot halt --config PATH [--reason TEXT]   create risk.halt_file: trading halts
    hedgebot halt --config PATH --clear           remove it: trading resumes

The daemon polls `risk.halt_file` every second (Engine._check_kill_file): while the file exists
its trading state is `halted` and no order passes the risk gate; removing the file returns it to
`active` (only if the file was what halted it). The file holds the reason and who/when, for the
operator reading it later. Works with the daemon down too: it starts halted. A config with
errors still halts (risk.halt_file alone is read, the errors are printed); --clear needs a valid
config. A relative halt_file is relative to the config file's directory, as for the daemon.
Exit codes: 0 done, 2 bad config or no halt_file configured, 1 the file cannot be written.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from bot.clock import wall_ms


def register(subparsers: Any) -> None:
    p = subparsers.add_parser(
        "halt", help="kill switch: halt trading (create risk.halt_file), or --clear it"
    )
    p.add_argument("--config", "-c", type=Path, required=True, help="TOML config file")
    p.add_argument("--secrets", type=Path, help="dotenv file with HEDGEBOT_* secrets")
    p.add_argument("--clear", action="store_true", help="remove the halt file: resume trading")
    p.add_argument("--reason", default="operator", help="why (written into the halt file)")
    p.set_defaults(func=cmd_halt)


def cmd_halt(args: argparse.Namespace) -> int:
    from bot.config import ConfigError, halt_file_of, load_settings

    try:
        path = load_settings(args.config, args.secrets).risk.halt_file
    except ConfigError as e:
        # Halting must not wait for a config fix: use risk.halt_file alone if it is readable.
        fallback = None if args.clear else halt_file_of(args.config)
        print(e.render(), file=sys.stderr)
        if fallback is None:
            return 2
        print(
            f"the config has errors; halting anyway with risk.halt_file {fallback}", file=sys.stderr
        )
        path = fallback
    if path is None:
        print(
            f"{args.config}: risk.halt_file is not set, so there is no kill switch file to "
            'create; add `halt_file = "state/HALT"` under [risk] (and restart the daemon)',
            file=sys.stderr,
        )
        return 2
    try:
        return _clear(path) if args.clear else _halt(path, args.reason)
    except OSError as e:
        print(f"cannot change the halt file {path}: {e}", file=sys.stderr)
        return 1


def _halt(path: Path, reason: str) -> int:
    from datetime import UTC, datetime  # here, not at the top: `hedgebot --help` stays fast

    existed = path.exists()
    path.parent.mkdir(parents=True, exist_ok=True)
    note = {
        "reason": reason,
        "by": _who(),
        "at": datetime.fromtimestamp(wall_ms() / 1000, tz=UTC).isoformat(timespec="seconds"),
    }
    # Write then rename: the daemon polling the path never sees a half-written file.
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps(note) + "\n", encoding="utf-8")
    os.replace(tmp, path)
    verb = "still halted (file refreshed)" if existed else "halted"
    print(f"{verb}: created {path} (reason: {reason}); the daemon stops trading within a second")
    return 0


def _clear(path: Path) -> int:
    if not path.exists():
        print(f"not halted by file: {path} does not exist; nothing to clear")
        return 0
    path.unlink()
    print(f"cleared: removed {path}; a daemon halted by this file resumes within a second")
    return 0


def _who() -> str:
    import getpass
    import socket

    try:
        return f"{getpass.getuser()}@{socket.gethostname()}"
    except Exception:  # no user in a container: the reason is what matters
        return "unknown"
