"""`hedgebot backtest` reports the risk the hedge leaves at the end of each path."""

from __future__ import annotations

import json
from pathlib import Path

from tests.e2e.test_backtest import backtest, write_config


def test_backtest_reports_end_of_path_var_and_worst_cell(tmp_path: Path) -> None:
    cfg = write_config(tmp_path)
    text = cfg.read_text().replace(
        "[risk]\n", "[risk]\nvar_sample_s = 600\nvar_window = 100\nvar_min_samples = 20\n", 1
    )
    cfg.write_text(text)
    out = tmp_path / "out"
    r = backtest(["--config", str(cfg), "--days", "0.25", "--paths", "2", "--out", str(out)])
    assert r.returncode == 0, r.stderr
    report = json.loads((out / "report.json").read_text())
    for p in report["per_path"]:
        total, btc = p["risk"]["total"], p["risk"]["BTC"]
        assert total["samples"] == btc["samples"] >= 20  # 6 h of 10-minute samples
        assert total["var_99_usd"] == btc["var_99_usd"] > 0  # the gamma a delta hedge leaves
        assert total["cvar_99_usd"] >= total["var_99_usd"]
        # short calls: the worst cell is a big move with vol up
        assert total["worst"]["iv_points"] == 20 and abs(total["worst"]["spot_pct"]) == 30
        assert f"end risk path {p['seed']}  VaR {total['var_99_usd']:,.2f}" in r.stdout
    assert report["end_var_99_usd"]["mean"] > 0
