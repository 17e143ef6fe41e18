"""The fast-forward and the risk view: without a VaR limit the risk view's hourly samples and
recomputations are made inside a span (nothing a decision reads can move); with one they end
the span. Either way the path is the one every tick through the full path gives."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from bot.backtest.fastforward import FastForward
from bot.backtest.path import PathResult, PathSpec, run_path
from tests.conftest import NOW_MS
from tests.test_corridor import fast_forward_settings, settings

MARKET = {"view": "usd", "vol": 0.6, "unit": "coin", "band": 0.4}


@pytest.mark.parametrize("limit", [None, 1e12])
def test_risk_runs_inside_spans_only_without_a_var_limit(
    tmp_path: Path, limit: float | None, monkeypatch: pytest.MonkeyPatch
) -> None:
    inside = {"n": 0}
    real = FastForward._risk_runs

    def counted(self: FastForward, *args: object) -> float | None:
        inside["n"] += 1
        return real(self, *args)  # type: ignore[arg-type]

    monkeypatch.setattr(FastForward, "_risk_runs", counted)
    base = settings(tmp_path, True, **MARKET)
    base = base.model_copy(update={"risk": base.risk.model_copy(update={"var_limit_usd": limit})})
    spec = PathSpec(seed=3, days=2, tick_ms=60_000, start_ms=NOW_MS)
    runs: dict[bool, tuple[PathResult, list[str]]] = {}
    for on in (False, True):
        events = tmp_path / f"events-{on}.jsonl"
        result = run_path(fast_forward_settings(base, on), spec, events=events)
        runs[on] = (result, events.read_text().splitlines())
    (off, off_events), (on, on_events) = runs[False], runs[True]
    if limit is None:
        assert inside["n"] >= 24, "the hourly samples are taken inside spans"
    else:
        assert inside["n"] == 0
    assert on_events == off_events
    assert on.risk == off.risk and on.risk["total"]["samples"] >= 40
    for f in dataclasses.fields(PathResult):
        if f.name != "attribution":
            assert getattr(on, f.name) == getattr(off, f.name), f.name
