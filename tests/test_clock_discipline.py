"""Nothing in the package reads or waits on real time except bot/clock.py: the hedger, the
executor and the shell ask the clock they are given, so the same code runs live and on a virtual
clock (backtests, drills, exact tests)."""

from __future__ import annotations

import re
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "bot"
ALLOWED = {PACKAGE / "clock.py"}
# Reading the time or sleeping on it, in any of the usual spellings.
PATTERNS = re.compile(
    r"^\s*import time\b|^\s*from time import|\btime\.(time|time_ns|monotonic|monotonic_ns|"
    r"perf_counter|perf_counter_ns|sleep)\(|\bloop\.time\(\)|get_running_loop\(\)\.time\(\)|"
    r"\basyncio\.sleep\(|\bdatetime\.(now|utcnow|today)\(|\bdate\.today\(",
    re.MULTILINE,
)


def offenders() -> list[str]:
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path in ALLOWED:
            continue
        text = path.read_text(encoding="utf-8")
        for m in PATTERNS.finditer(text):
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{path.relative_to(PACKAGE.parent)}:{line}: {m.group(0).strip()}")
    return found


def test_only_the_clock_module_reads_or_waits_on_real_time() -> None:
    assert offenders() == []


def test_the_check_catches_each_spelling(tmp_path: Path) -> None:
    samples = [
        "import time",
        "x = time.monotonic()",
        "await asyncio.sleep(1)",
        "now = loop.time()",
        "d = datetime.now(tz=UTC)",
    ]
    for sample in samples:
        assert PATTERNS.search(sample), sample
    assert not PATTERNS.search("await self.clock.sleep(1)")
    assert not PATTERNS.search("now = self.clock.now_ms()")
