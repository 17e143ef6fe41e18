"""Benchmark: start-up time of the command line, `python -m bot --help`, as an operator feels it.

Compares, in the same run and on the same interpreter, against the floor every Python command
pays: `python -c pass` (interpreter start-up and site-packages, editable-install hooks included).
Each is run as a fresh subprocess, warm-up runs first; the median is printed, with the CLI's own
cost (median minus baseline) and the modules that `--help` imported.

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


def time_runs(cmd: list[str], runs: int, warmup: int = 2) -> list[float]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = []
    for i in range(warmup + runs):
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, check=True)
        if i >= warmup:
            out.append(time.perf_counter() - t0)
    return out


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
    base = statistics.median(time_runs([sys.executable, "-c", "pass"], a.runs))
    cli = statistics.median(time_runs([sys.executable, "-m", "bot", *a.args], a.runs))
    print(f"python -c pass            median {base * 1000:7.1f} ms ({a.runs} runs)")
    print(f"python -m bot {' '.join(a.args):<11} median {cli * 1000:7.1f} ms ({a.runs} runs)")
    print(f"CLI cost over baseline           {(cli - base) * 1000:7.1f} ms")
    print(f"heavy modules imported: {', '.join(heavy_imports(a.args)) or 'none'}")


if __name__ == "__main__":
    main()
