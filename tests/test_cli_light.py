"""`hedgebot --help` stays fast: parsing arguments imports argparse and the stdlib only, and each
handler imports its own (heavy) module when it runs. Timed by bench/bench_cli.py; here the
import set is checked, which does not depend on how loaded the machine is."""

from __future__ import annotations

import subprocess
import sys

import pytest

from bot.cli import build_parser
from bot.io.journal_rows import TABLES
from tests.helpers import ROOT, clean_env

HEAVY = ("pydantic", "structlog", "aiomqtt", "paho", "rich", "numpy", "scipy", "ccxt", "bot.config")

PROBE = """
import runpy, sys
sys.argv = ["bot", *{argv!r}]
try:
    runpy.run_module("bot", run_name="__main__")
except SystemExit as e:
    code = e.code
print("LOADED=" + ",".join(m for m in {heavy!r} if m in sys.modules))
print("CODE=" + str(code))
"""


def loaded_by(argv: list[str]) -> tuple[list[str], str]:
    r = subprocess.run(
        [sys.executable, "-c", PROBE.format(argv=argv, heavy=HEAVY)],
        cwd=ROOT,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = r.stdout.splitlines()
    loaded = next(x for x in lines if x.startswith("LOADED=")).removeprefix("LOADED=")
    code = next(x for x in lines if x.startswith("CODE=")).removeprefix("CODE=")
    return [m for m in loaded.split(",") if m], code


@pytest.mark.parametrize(
    "argv",
    [
        ["--help"],
        ["ctl", "--help"],
        ["ctl", "flatten", "--help"],
        ["journal", "--help"],
        ["fleet", "--help"],
        ["halt", "--help"],
        ["record", "--help"],
        ["ctl", "nonsense"],  # a usage error is reported before anything heavy is imported
    ],
)
def test_help_and_usage_errors_import_nothing_heavy(argv: list[str]) -> None:
    loaded, code = loaded_by(argv)
    assert loaded == [], f"`hedgebot {' '.join(argv)}` imported {loaded}"
    assert code == ("2" if "nonsense" in argv else "0")


def test_every_subcommand_is_registered_with_a_handler() -> None:
    parser = build_parser()
    cases = {
        "run": ["run", "--config", "x.toml"],
        "check-config": ["check-config", "x.toml"],
        "journal": ["journal", "--db", "j.sqlite", "orders"],
        "status": ["status"],
        "fleet": ["fleet"],
        "ctl": ["ctl", "--config", "x.toml", "pause"],
        "halt": ["halt", "--config", "x.toml"],
        "record": ["record", "--config", "x.toml", "--out", "x.csv", "--duration", "30m"],
    }
    for name, argv in cases.items():
        args = parser.parse_args(argv)
        assert args.command == name and callable(args.func), name


def test_journal_tables_spelled_out_in_the_cli_match_the_journal() -> None:
    parser = build_parser()
    for table in TABLES:
        assert parser.parse_args(["journal", table]).table == table
    with pytest.raises(SystemExit):
        parser.parse_args(["journal", "trades"])


def test_markets_on_a_simulated_config_says_there_is_nothing_to_read() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "bot", "markets", "--config", str(ROOT / "config/paper.toml")],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0 and r.stdout.strip() == "[]"
    assert "every account is simulated" in r.stderr
