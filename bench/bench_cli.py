"""Benchmark: start-up time of the command line, `python -m bot --help`, as an operator feels it.

Compares, in the same run and on the same interpreter, against the floor every Python command
pays: `python -c pass` (interpreter start-up and site-packages, editable-install hooks included).
Each is run as a fresh subprocess, the two interleaved, warm-up runs first; the medians are
printed, with the CLI's own cost (median minus baseline) and the heavy modules it imported.

    python bench/bench_cli.py [--runs 15] [--args --help]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# What `--help` must not import: the CLI parses arguments with argparse and the stdlib alone.
HEAVY = ("pydantic", "structlog", "aiomqtt", "rich", "numpy", "scipy", "ccxt")


def _once(cmd: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
    return time.perf_counter() - t0


def time_pair(a: list[str], b: list[str], runs: int, warmup: int = 2) -> tuple[list[float], ...]:
    """Runs of `a` and `b`, interleaved so that a shared machine's load hits both alike."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    ta: list[float] = []
    tb: list[float] = []
    for i in range(warmup + runs):
        x, y = _once(a, env), _once(b, env)
        if i >= warmup:
            ta.append(x)
            tb.append(y)
    return ta, tb


def heavy_imports(cli_args: list[str]) -> list[str]:
    """The heavy top-level packages loaded by `python -m bot ARGS`."""
    probe = (
        "import sys, runpy\n"
        f"sys.argv = ['bot', *{cli_args!r}]\n"
        "try:\n    runpy.run_module('bot', run_name='__main__')\nexcept SystemExit:\n    pass\n"
        f"print('HEAVY=' + ','.join(m for m in {HEAVY!r} if m in sys.modules))"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-c", probe], cwd=ROOT, env=env, capture_output=True, text=True
    )
    line = next((x for x in r.stdout.splitlines() if x.startswith("HEAVY=")), "HEAVY=?")
    return [m for m in line.removeprefix("HEAVY=").split(",") if m]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=15)
    ap.add_argument("--args", nargs="*", default=["--help"], help="CLI arguments to time")
    a = ap.parse_args()
    tb, tc = time_pair(
        [sys.executable, "-c", "pass"], [sys.executable, "-m", "bot", *a.args], a.runs
    )
    base, cli = statistics.median(tb), statistics.median(tc)
    print(f"python -c pass            median {base * 1000:7.1f} ms ({a.runs} runs)")
    print(f"python -m bot {' '.join(a.args):<11} median {cli * 1000:7.1f} ms ({a.runs} runs)")
    print(f"CLI cost over baseline           {(cli - base) * 1000:7.1f} ms")
    print(f"heavy modules imported: {', '.join(heavy_imports(a.args)) or 'none'}")


if __name__ == "__main__":
    main()
