"""The house rules that a machine can check: typed (`mypy --strict bot`), linted and formatted."""

from __future__ import annotations

import subprocess
import sys

from tests.helpers import ROOT


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args], capture_output=True, text=True, cwd=ROOT, timeout=600
    )


def test_mypy_strict_passes_on_the_package() -> None:
    r = run("mypy", "--strict", "bot")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_check_is_clean() -> None:
    r = run("ruff", "check", "bot", "tests", "bench")
    assert r.returncode == 0, r.stdout + r.stderr


def test_ruff_format_is_clean() -> None:
    r = run("ruff", "format", "--check", "bot", "tests", "bench")
    assert r.returncode == 0, r.stdout + r.stderr
