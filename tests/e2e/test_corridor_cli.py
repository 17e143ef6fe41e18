"""The trigger corridor through the real entry point: `hedgebot backtest --events` writes the
same events, byte for byte, with `engine.corridor` off and on (set from the environment, as an
operator overrides any setting), likewise with `engine.fast_forward` off and on, and
`check-config` shows the settings."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import ROOT, clean_env
from tests.test_corridor import WW_COIN, market_toml


def bot(args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(**env),
        timeout=600,
    )


@pytest.mark.parametrize("policy", ['kind = "band"\nband = 0.4', WW_COIN])
def test_backtest_events_are_the_same_with_the_corridor_off_and_on(
    tmp_path: Path, policy: str
) -> None:
    cfg = tmp_path / "corridor.toml"
    cfg.write_text(market_toml(view="usd", vol=0.8, unit="coin", policy=policy))
    args = ["backtest", "--config", str(cfg), "--days", "1", "--seed", "9", "--events"]
    outs = {}
    for flag in ("false", "true"):
        out = tmp_path / flag
        # fast-forward off: report.json byte for byte (its test below compares it with on)
        r = bot(
            [*args, "--out", str(out), "--jobs", "1"],
            HEDGEBOT_ENGINE__CORRIDOR=flag,
            HEDGEBOT_ENGINE__FAST_FORWARD="false",
        )
        assert r.returncode == 0, r.stderr
        outs[flag] = out
    off = (outs["false"] / "events-9.jsonl").read_bytes()
    on = (outs["true"] / "events-9.jsonl").read_bytes()
    assert off.count(b'"order.sent"') > 2, "the market makes the hedger trade"
    assert on == off
    assert (outs["true"] / "report.json").read_bytes() == (
        outs["false"] / "report.json"
    ).read_bytes()


def test_check_config_shows_the_corridor_settings(tmp_path: Path) -> None:
    cfg = tmp_path / "corridor.toml"
    cfg.write_text(market_toml(view="usd", vol=0.8, unit="coin", band=0.4))
    r = bot(["check-config", str(cfg)], HEDGEBOT_ENGINE__CORRIDOR_REFRESH_S="90")
    assert r.returncode == 0, r.stderr
    assert '"corridor": true' in r.stdout and '"corridor_refresh_s": 90.0' in r.stdout
    bad = bot(["check-config", str(cfg)], HEDGEBOT_ENGINE__CORRIDOR_REFRESH_S="0")
    assert bad.returncode != 0
    assert "engine.corridor_refresh_s" in bad.stdout + bad.stderr
    assert "greater than 0" in bad.stdout + bad.stderr


def test_backtest_is_the_same_with_the_fast_forward_off_and_on(tmp_path: Path) -> None:
    """`engine.fast_forward` (on by default) steps over quiet ticks: the events are the same,
    byte for byte, as with every tick through the full path, and so is report.json but for the
    attribution's last digits."""
    cfg = tmp_path / "corridor.toml"
    cfg.write_text(market_toml(view="usd", vol=0.8, unit="coin", band=0.4))
    args = ["backtest", "--config", str(cfg), "--days", "1", "--seed", "9", "--events"]
    outs = {}
    for flag in ("false", "true"):
        out = tmp_path / flag
        r = bot([*args, "--out", str(out), "--jobs", "1"], HEDGEBOT_ENGINE__FAST_FORWARD=flag)
        assert r.returncode == 0, r.stderr
        outs[flag] = out
    off = (outs["false"] / "events-9.jsonl").read_bytes()
    on = (outs["true"] / "events-9.jsonl").read_bytes()
    assert off.count(b'"order.sent"') > 2, "the market makes the hedger trade"
    assert on == off
    report_on = json.loads((outs["true"] / "report.json").read_text())
    report_off = json.loads((outs["false"] / "report.json").read_text())
    assert same_but_attribution(report_on) == same_but_attribution(report_off)
    parts_on, parts_off = attributions(report_on), attributions(report_off)
    assert parts_on.keys() == parts_off.keys() and len(parts_on) > 4
    for where, value in parts_off.items():
        # a quiet span's attribution is summed vectorized: equal to rounding
        assert parts_on[where] == pytest.approx(value, rel=1e-9, abs=1e-6), where
    r = bot(["check-config", str(cfg)], HEDGEBOT_ENGINE__FAST_FORWARD="false")
    assert r.returncode == 0, r.stderr
    assert '"fast_forward": false' in r.stdout


def attributions(node: Any, where: str = "") -> dict[str, float]:
    """Every number under an "attribution" key, by its path in the report."""
    out: dict[str, float] = {}
    if isinstance(node, dict):
        for k, v in node.items():
            if k.startswith("attribution") and isinstance(v, dict):
                out.update({f"{where}/{k}/{p}": float(x) for p, x in v.items()})
            else:
                out.update(attributions(v, f"{where}/{k}"))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            out.update(attributions(v, f"{where}/{i}"))
    return out


def same_but_attribution(node: Any) -> Any:
    if isinstance(node, dict):
        return {
            k: same_but_attribution(v) for k, v in node.items() if not k.startswith("attribution")
        }
    if isinstance(node, list):
        return [same_but_attribution(v) for v in node]
    return node
