"""[hedge.<U>.policy] for the cost-aware policies, band units and modifiers: what a config
builds, and errors that name the field, the value and the rule (through `hedgebot check-config`)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import load_settings
from bot.core.policy import Aim, BandPolicy, Modifiers, WhalleyWilmott, Zakamouline
from bot.policy_config import modifiers_for, policy_for
from tests.test_check_config import check

HEAD = '[hedge.BTC]\ninstrument = "BTC/USDT:USDT"\nunit = "usd"\ntarget = 10\n[hedge.BTC.policy]\n'


def built(tmp: Path, policy: str) -> tuple[object, Modifiers]:
    path = tmp / "c.toml"
    path.write_text(HEAD + policy)
    h = load_settings(path, env={}).hedge["BTC"]
    return policy_for(h), modifiers_for(h)


def test_whalley_wilmott_and_zakamouline_from_config(tmp_path: Path) -> None:
    pol, mods = built(
        tmp_path,
        'kind = "whalley_wilmott"\nrisk_aversion = 0.0001\nband_floor = 0.1\nband_cap = 2\n'
        'band_unit = "pct_gross"\n',
    )
    aim = Aim("usd", 10.0, 0.0)
    assert pol == WhalleyWilmott(1e-4, 0.1, 2.0, "pct_gross", aim, "edge")
    assert mods == Modifiers()
    pol, _ = built(
        tmp_path,
        'kind = "zakamouline"\nrisk_aversion = 0.001\nband_floor = 50\nband_cap = 5000\n'
        'to = "target"\n',
    )
    assert pol == Zakamouline(1e-3, 50.0, 5000.0, None, aim, "target")


def test_band_unit_and_modifiers_from_config(tmp_path: Path) -> None:
    pol, mods = built(
        tmp_path,
        'kind = "band"\nband = 0.5\nband_unit = "coin"\ntime_fallback_s = 3600\n'
        "time_fallback_inner = 0.4\ndebounce_s = 30\nmin_move_pct = 0.25\n",
    )
    assert pol == BandPolicy(0.5, Aim("usd", 10.0, 0.0), "target", 0.5, 0.5, "coin")
    assert mods == Modifiers(
        time_fallback_ms=3_600_000, inner=0.4, debounce_ms=30_000, min_move=0.0025
    )


def test_the_realized_vol_half_life_is_configurable(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text(HEAD + 'kind = "band"\nband = 1\nvol_half_life_s = 600\n')
    assert load_settings(path, env={}).hedge["BTC"].policy.vol_half_life_s == 600.0


WW = 'kind = "whalley_wilmott"\n'


@pytest.mark.parametrize(
    ("policy", "path", "rule"),
    [
        (WW + "band_floor = 0.1\nband_cap = 1", "hedge.BTC.policy.risk_aversion", "Field required"),
        (
            WW + "risk_aversion = 0\nband_floor = 0.1\nband_cap = 1",
            "hedge.BTC.policy.risk_aversion",
            "greater than 0 (got 0)",
        ),
        (
            WW + "risk_aversion = 1e-4\nband_floor = 2\nband_cap = 1",
            "hedge.BTC.policy.band_cap",
            "must be >= band_floor (2.0) (got 1)",
        ),
        (
            'kind = "zakamouline"\nrisk_aversion = 1e-4\nband_floor = nan\nband_cap = 1',
            "hedge.BTC.policy.band_floor",
            "finite number",
        ),
        (
            'kind = "band"\nband = 1\nband_unit = "bps"',
            "hedge.BTC.policy.band_unit",
            "'coin', 'usd' or 'pct_gross' (got 'bps')",
        ),
        (
            'kind = "band"\nband = 1\ndebounce_s = -5',
            "hedge.BTC.policy.debounce_s",
            "greater than 0",
        ),
        (
            'kind = "band"\nband = 1\ntime_fallback_inner = 1.5',
            "hedge.BTC.policy.time_fallback_inner",
            "less than 1 (got 1.5)",
        ),
        (
            'kind = "band"\nband = 1\nmin_move_pct = 0',
            "hedge.BTC.policy.min_move_pct",
            "greater than 0",
        ),
        (
            'kind = "band"\nband = 1\nvol_half_life_s = 0',
            "hedge.BTC.policy.vol_half_life_s",
            "greater than 0",
        ),
        (
            'kind = "gamma_scalp"',
            "hedge.BTC.policy.kind",
            "unknown policy kind: one of 'band', 'whalley_wilmott', 'zakamouline'",
        ),
    ],
)
def test_policy_config_errors_name_field_value_and_rule(
    tmp_path: Path, policy: str, path: str, rule: str
) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(f'[hedge.BTC]\ninstrument = "X"\n[hedge.BTC.policy]\n{policy}\n')
    r = check(cfg)
    assert r.returncode == 2
    assert f"{path}: " in r.stderr and rule in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr  # one problem, one line
