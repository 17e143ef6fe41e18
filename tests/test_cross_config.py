"""Config of cross hedges and correlated sim markets: every rule refuses with the field, the
value and the rule (load_settings is what `run` and `check-config` call; one case runs through
`hedgebot check-config` itself)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, load_settings
from tests import tomlw
from tests.helpers import ROOT, clean_env

PAIR = ROOT / "tests" / "backtest_configs" / "cross_pair.toml"


def write(tmp: Path, edit: Any) -> Path:
    doc = tomllib.loads(PAIR.read_text())
    edit(doc)
    path = tmp / "c.toml"
    path.write_text(tomlw.dumps(doc))
    return path


def cross(**kw: Any) -> Any:
    return lambda d: d["hedge"]["SOL"]["cross"].update(kw)


def corr(**kw: Any) -> Any:
    return lambda d: d["sim"]["correlation"].update(kw)


CASES = [
    (cross(proxies=["ETH"]), "hedge.SOL.cross.proxies", "'ETH'", "needs its own [hedge.ETH]"),
    (cross(proxies=["SOL"]), "hedge.SOL.cross.proxies", "'SOL'", "cannot be its own proxy"),
    (cross(proxies=["BTC", "btc"]), "hedge.SOL.cross.proxies", "['BTC', 'BTC']", "twice"),
    (cross(proxies=[]), "hedge.SOL.cross.proxies", "0 item(s)", "at least 1"),
    (cross(half_life=10.0), "hedge.SOL.cross", "", "window or half_life, not both"),
    (cross(min_samples=1000), "hedge.SOL.cross", "min_samples = 1000", "<= window = 720"),
    (cross(min_samples=2), "hedge.SOL.cross", "min_samples = 2", "number of proxies + 1"),
    (cross(corr_floor=1.5), "hedge.SOL.cross.corr_floor", "1.5", "less than or equal to 1"),
    (cross(sample_s=0), "hedge.SOL.cross.sample_s", "0", "greater than 0"),
    (cross(on_breakdown="flat"), "hedge.SOL.cross.on_breakdown", "'flat'", "'halt', 'direct'"),
    (cross(windw=5), "hedge.SOL.cross.windw", "", "unknown setting"),
    (corr(matrix=[[1.0, 0.8], [0.7, 1.0]]), "sim.correlation", "", "symmetric"),
    (corr(matrix=[[1.0, 0.8]]), "sim.correlation", "(1, 2)", "must be 2 x 2"),
    (corr(matrix=[[1.0, 1.2], [1.2, 1.0]]), "sim.correlation", "", "[-1, 1]"),
    (corr(underlyings=["BTC", "DOGE"]), "sim", "['DOGE']", "not in sim.underlyings"),
    (corr(break_rho=1.5), "sim.correlation.break_rho", "1.5", "less than or equal to 1"),
]


@pytest.mark.parametrize(("edit", "field", "value", "rule"), CASES)
def test_each_bad_setting_names_field_value_and_rule(
    tmp_path: Path, edit: Any, field: str, value: str, rule: str
) -> None:
    with pytest.raises(ConfigError) as e:
        load_settings(write(tmp_path, edit), env={})
    text = str(e.value)
    assert field in text and value in text and rule in text, text


def test_a_proxy_that_is_cross_hedged_itself_is_refused(tmp_path: Path) -> None:
    def chain(d: dict[str, Any]) -> None:
        d["hedge"]["BTC"]["cross"] = {"proxies": ["SOL"], "window": 100, "min_samples": 50}

    with pytest.raises(ConfigError, match="'BTC': is cross-hedged itself; proxies must not"):
        load_settings(write(tmp_path, chain), env={})


def test_a_non_positive_definite_matrix_and_breakdown_are_refused(tmp_path: Path) -> None:
    def three(d: dict[str, Any]) -> None:
        d["sim"]["underlyings"]["ETH"] = {"price": 3000.0}
        d["sim"]["correlation"] = {
            "underlyings": ["BTC", "ETH", "SOL"],
            "matrix": [[1.0, 0.9, -0.9], [0.9, 1.0, 0.9], [-0.9, 0.9, 1.0]],
        }

    with pytest.raises(ConfigError, match="positive definite"):
        load_settings(write(tmp_path, three), env={})

    def broken(d: dict[str, Any]) -> None:
        three(d)
        d["sim"]["correlation"]["matrix"] = [[1, 0.5, 0.5], [0.5, 1, 0.5], [0.5, 0.5, 1]]
        d["sim"]["correlation"]["break_after_days"] = 1.0
        d["sim"]["correlation"]["break_rho"] = -0.6

    with pytest.raises(ConfigError, match=r"break_rho = -0.6 gives no valid .*needs > -0.5"):
        load_settings(write(tmp_path, broken), env={})


def test_check_config_refuses_with_exit_2_and_accepts_the_example(tmp_path: Path) -> None:
    bad = write(tmp_path, cross(proxies=["ETH"]))
    r = subprocess.run(
        [sys.executable, "-m", "bot", "check-config", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=clean_env(),
        timeout=60,
    )
    assert r.returncode == 2
    assert "hedge.SOL.cross.proxies: 'ETH': a proxy needs its own [hedge.ETH] entry" in r.stderr
    settings = load_settings(ROOT / "config" / "cross.toml", env={})
    sol = settings.hedge["SOL"].cross
    assert sol is not None and sol.proxies == ["BTC", "ETH"] and sol.on_breakdown == "halt"
    assert settings.sim.correlation is not None
