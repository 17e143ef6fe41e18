"""Command line checks several subcommands share, in the house style `--flag: rule (got value)`.
Standard library only: they run before any heavy import."""

from __future__ import annotations

import argparse
import os
import re
from pathlib import Path


def negatives_are_values(p: argparse.ArgumentParser) -> None:
    """`--days -1e3` or `--duration -1h` reach the option's own check (which names the rule)
    instead of argparse's "expected one argument": argparse only takes `-1`-like words as
    values. The parser has no option that starts with a digit, so nothing else changes."""
    p._negative_number_matcher = re.compile(r"^-\d|^-\.\d")


def out_folder(out: Path, what: str = "--out") -> str | None:
    """What keeps `--out` from being the result folder (made if missing), or None. Checked
    before the work runs, so a bad folder never costs the work."""
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        return f"{what}: cannot be made a folder ({e.strerror}) (got {str(out)!r})"
    if not os.access(out, os.W_OK | os.X_OK):
        return f"{what}: folder must be writable (got {str(out)!r})"
    return None


def out_file(out: Path) -> str | None:
    """What keeps `--out` from being written as a file (its folder made if missing), or None."""
    if out.is_dir():
        return f"--out: must be a file, not a folder (got {str(out)!r})"
    return out_folder(out.parent, "--out's folder")
