"""`hedgebot check-config` through the real entry point (a subprocess running `python -m bot`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def check(path: Path, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HEDGEBOT_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", "check-config", str(path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        env=full_env,
        timeout=60,
    )


def test_every_example_config_is_valid() -> None:
    configs = sorted((ROOT / "config").glob("*.toml"))
    assert configs, "no example configs"
    for path in configs:
        r = check(
            path,
            {
                "HEDGEBOT_ACCOUNTS__DERIBIT__API_KEY": "k",
                "HEDGEBOT_ACCOUNTS__DERIBIT__SECRET": "s",
                "HEDGEBOT_ACCOUNTS__BINANCE__API_KEY": "k",
                "HEDGEBOT_ACCOUNTS__BINANCE__SECRET": "s",
            },
        )
        assert r.returncode == 0, (path, r.stderr)
        assert json.loads(r.stdout)["bot_id"]


def test_env_overrides_file_and_secrets_are_masked(tmp_path: Path) -> None:
    r = check(
        ROOT / "config" / "paper.toml",
        {
            "HEDGEBOT_HEDGE__BTC__POLICY__BAND": "0.25",
            "HEDGEBOT_ACCOUNTS__SIM__API_KEY": "supersecretkey",
        },
    )
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["hedge"]["BTC"]["policy"] == {
        "kind": "band",
        "band": 0.25,
        "band_lower": None,
        "band_upper": None,
        "band_unit": None,
        "to": "target",
        # the modifiers every policy takes, off by default, and the realized-vol half-life
        "time_fallback_s": None,
        "time_fallback_inner": 0.25,
        "debounce_s": None,
        "min_move_pct": None,
        "vol_half_life_s": 3600.0,
    }
    assert data["hedge"]["BTC"]["instrument"] == "BTC/USDT:USDT"  # the rest of the file kept
    assert data["accounts"]["sim"]["api_key"] == "**********"
    assert "supersecretkey" not in r.stdout + r.stderr


def broken(tmp_path: Path, text: str) -> subprocess.CompletedProcess[str]:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return check(path)


def test_bad_value_names_field_value_and_rule(tmp_path: Path) -> None:
    r = broken(
        tmp_path,
        """
[execution]
max_slippage_bps = -3
[hedge.BTC]
instrument = "BTC/USDT:USDT"
hedge_ratio = 2
[hedge.BTC.policy]
kind = "band"
band = 0.5
""",
    )
    assert r.returncode == 2
    assert "execution.max_slippage_bps" in r.stderr and "-3" in r.stderr
    assert "greater than 0" in r.stderr
    assert "hedge.BTC.hedge_ratio" in r.stderr and "less than or equal to 1" in r.stderr
    assert "2 error(s)" in r.stderr  # every error, not only the first


def test_unknown_key_is_an_error(tmp_path: Path) -> None:
    r = broken(tmp_path, "[execution]\nmax_slipage_bps = 5\n")
    assert r.returncode == 2
    assert "execution.max_slipage_bps" in r.stderr and "unknown setting" in r.stderr


def test_secret_in_file_is_refused_and_not_echoed(tmp_path: Path) -> None:
    r = broken(tmp_path, '[accounts.x]\nexchange = "deribit"\napi_key = "AKIAsecret"\n')
    assert r.returncode == 2
    assert "accounts.x.api_key" in r.stderr and "HEDGEBOT_ACCOUNTS__X__API_KEY" in r.stderr
    assert "AKIAsecret" not in r.stderr + r.stdout


def test_invalid_toml_and_missing_file(tmp_path: Path) -> None:
    r = broken(tmp_path, "[execution\n")
    assert r.returncode == 2 and "not valid TOML" in r.stderr
    r = check(tmp_path / "nope.toml")
    assert r.returncode == 2 and "file not found" in r.stderr


def test_live_mode_needs_confirmation(tmp_path: Path) -> None:
    path = tmp_path / "live.toml"
    path.write_text('[accounts.d]\nexchange = "deribit"\nmode = "live"\n')
    r = check(path, {"HEDGEBOT_ACCOUNTS__D__API_KEY": "k", "HEDGEBOT_ACCOUNTS__D__SECRET": "s"})
    assert r.returncode == 2
    assert "accounts.d" in r.stderr and "confirm_live" in r.stderr


def test_hedge_must_name_an_existing_account(tmp_path: Path) -> None:
    r = broken(
        tmp_path,
        '[hedge.BTC]\naccount = "nope"\ninstrument = "X"\npolicy = { kind = "band", band = 1 }\n',
    )
    assert r.returncode == 2 and "hedge.BTC.account" in r.stderr


def test_currency_and_underlying_names_are_upper_case_from_any_source(tmp_path: Path) -> None:
    from bot.config import load_settings

    path = tmp_path / "c.toml"
    path.write_text("[sim.balances]\nUSDT = 5\nbtc = 2\n[sim.underlyings.eth]\nprice = 3000\n")
    s = load_settings(path, env={"HEDGEBOT_SIM__BALANCES__USDC": "7"})
    assert s.sim.balances == {"USDT": 5.0, "BTC": 2.0, "USDC": 7.0}
    assert list(s.sim.underlyings) == ["ETH"]


# ---- [hedge.<U>.policy] ------------------------------------------------------------------


def test_old_band_key_says_where_it_moved(tmp_path: Path) -> None:
    r = broken(tmp_path, '[hedge.BTC]\ninstrument = "X"\nband = 0.5\nto = "edge"\n')
    assert r.returncode == 2
    assert 'hedge.BTC.band: moved to [hedge.BTC.policy]: kind = "band", band = 0.5' in r.stderr
    assert 'hedge.BTC.to: moved to [hedge.BTC.policy]: to = "edge"' in r.stderr
    assert "hedge.BTC.policy: Field required" in r.stderr


def test_old_band_key_from_the_environment_too(tmp_path: Path) -> None:
    r = check(ROOT / "config" / "paper.toml", {"HEDGEBOT_HEDGE__BTC__BAND": "0.25"})
    assert r.returncode == 2
    assert "hedge.BTC.band: moved to [hedge.BTC.policy]" in r.stderr, r.stderr


@pytest.mark.parametrize(
    ("policy", "path", "rule"),
    [
        ("band = 0.5", "hedge.BTC.policy.kind", "the policy kind is required: one of 'band'"),
        (
            'kind = "gamma"',
            "hedge.BTC.policy.kind",
            "unknown policy kind: one of 'band', 'whalley_wilmott', 'zakamouline' (got 'gamma')",
        ),
        ('kind = "band"\nband = -1', "hedge.BTC.policy.band", "greater than 0"),
        ('kind = "band"\nband = inf', "hedge.BTC.policy.band", "finite number"),
        ('kind = "band"\nband = 1\nbandd = 2', "hedge.BTC.policy.bandd", "unknown setting"),
        ('kind = "band"\nto = "middle"', "hedge.BTC.policy.to", "'target' or 'edge'"),
        (
            'kind = "band"\nband_lower = 0.2',
            "hedge.BTC.policy",
            "give band, or both band_lower and band_upper",
        ),
    ],
)
def test_policy_errors_name_field_value_and_rule(
    tmp_path: Path, policy: str, path: str, rule: str
) -> None:
    r = broken(tmp_path, f'[hedge.BTC]\ninstrument = "X"\n[hedge.BTC.policy]\n{policy}\n')
    assert r.returncode == 2
    assert f"{path}: " in r.stderr and rule in r.stderr, r.stderr
    assert "1 error(s)" in r.stderr


def test_policy_for_builds_the_configured_band(tmp_path: Path) -> None:
    from bot.config import load_settings
    from bot.core.policy import Aim, BandPolicy
    from bot.policy_config import policy_for

    path = tmp_path / "c.toml"
    path.write_text(
        '[hedge.ETH]\ninstrument = "ETH/USDT:USDT"\nunit = "usd"\ntarget = 100\nbias = -50\n'
        '[hedge.ETH.policy]\nkind = "band"\nband = 2000\nband_upper = 5000\nto = "edge"\n'
    )
    pol = policy_for(load_settings(path, env={}).hedge["ETH"])
    assert pol == BandPolicy(band=2000, aim=Aim("usd", 100, -50), to="edge", lower=2000, upper=5000)
    path.write_text(
        '[hedge.ETH]\ninstrument = "X"\n'
        '[hedge.ETH.policy]\nkind = "band"\nband_lower = 1\nband_upper = 3\n'
    )
    assert policy_for(load_settings(path, env={}).hedge["ETH"]) == BandPolicy(
        band=3, lower=1, upper=3
    )


def test_set_reaches_into_the_policy_and_names_moved_keys() -> None:
    from bot.config import ConfigError, Settings, with_setting

    s = Settings(hedge={"BTC": {"instrument": "X", "policy": {"kind": "band", "band": 0.5}}})
    assert with_setting(s, "hedge.BTC.policy.band_upper", 0.9).hedge["BTC"].policy.band_upper == 0.9
    with pytest.raises(ConfigError, match=r"hedge.BTC.band: moved to \[hedge.BTC.policy\]"):
        with_setting(s, "hedge.BTC.band", 0.3)
    with pytest.raises(
        ConfigError, match=r"hedge\.BTC\.policy\.band: Input should be greater than 0"
    ):
        with_setting(s, "hedge.BTC.policy.band", 0)
