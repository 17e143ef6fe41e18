"""`hedgebot check-config` through the real entry point (a subprocess running `python -m bot`)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tomllib
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
        # Keys only for the accounts the file declares: others would be refused as phantoms.
        accounts = tomllib.loads(path.read_text()).get("accounts", {})
        keys = {
            f"HEDGEBOT_ACCOUNTS__{name.upper()}__{k}": "k"
            for name, acc in accounts.items()
            if acc.get("exchange", "sim") != "sim"
            for k in ("API_KEY", "SECRET")
        }
        r = check(path, keys)
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
    assert len(r.stderr.strip().splitlines()) == 1  # one problem, one line


def test_policy_for_builds_the_configured_band(tmp_path: Path) -> None:
    from bot.config import Settings
    from bot.core.policy import Aim, BandPolicy
    from bot.policy_config import policy_for

    hedge = {
        "instrument": "ETH/USDT:USDT",
        "unit": "usd",
        "target": 100,
        "bias": -50,
        "policy": {"kind": "band", "band": 2000, "band_upper": 5000, "to": "edge"},
    }
    pol = policy_for(Settings(hedge={"ETH": hedge}).hedge["ETH"])
    assert pol == BandPolicy(band=2000, aim=Aim("usd", 100, -50), to="edge", lower=2000, upper=5000)
    hedge = {"instrument": "X", "policy": {"kind": "band", "band_lower": 1, "band_upper": 3}}
    assert policy_for(Settings(hedge={"ETH": hedge}).hedge["ETH"]) == BandPolicy(
        band=3, lower=1, upper=3
    )


def test_set_reaches_into_the_policy_and_names_moved_keys() -> None:
    from bot.config import ConfigError, Settings
    from bot.config_set import with_setting

    s = Settings(hedge={"BTC": {"instrument": "X", "policy": {"kind": "band", "band": 0.5}}})
    assert with_setting(s, "hedge.BTC.policy.band_upper", 0.9).hedge["BTC"].policy.band_upper == 0.9
    with pytest.raises(ConfigError, match=r"hedge.BTC.band: moved to \[hedge.BTC.policy\]"):
        with_setting(s, "hedge.BTC.band", 0.3)
    with pytest.raises(
        ConfigError, match=r"hedge\.BTC\.policy\.band: Input should be greater than 0"
    ):
        with_setting(s, "hedge.BTC.policy.band", 0)


# --- input safety through the real entry point ----------------------------------------------------

SECRET_ENV = {
    "HEDGEBOT_MQTT__COMMAND_SECRET": "cli-cmd-secret-1a2b",
    "HEDGEBOT_MQTT__PASSWORD": "cli-mqtt-pass-3c4d",
    "HEDGEBOT_ACCOUNTS__SIM__API_KEY": "cli-sim-key-5e6f",
}
SECRET_FILE = "HEDGEBOT_ACCOUNTS__SIM__SECRET=cli-file-secret-7a8b\n"
HEDGE = '[hedge.BTC]\ninstrument = "BTC/USDT:USDT"\n[hedge.BTC.policy]\nkind = "band"\nband = 0.5\n'


def cli(
    args: list[str], cwd: Path = ROOT, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("HEDGEBOT_")}
    full_env.update(env or {})
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        capture_output=True,
        text=True,
        cwd=cwd,
        env=full_env,
        timeout=120,
    )


def test_reported_secret_leaks_are_gone_from_check_config_and_run(tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.env"
    secrets.write_text(SECRET_FILE)
    cases = {
        "typo": HEDGE.replace("[hedge.BTC]\n", '[hedge.BTC]\naccount = "typo"\n'),
        "live": '[accounts.sim]\nmode = "live"\n' + HEDGE,
        "account": '[accounts.sim]\nexchange = "sim"\nmode = "testnet"\nmode2 = 1\n' + HEDGE,
    }
    for name, text in cases.items():
        cfg = tmp_path / f"{name}.toml"
        cfg.write_text(text + f'[journal]\npath = "{tmp_path / "j.sqlite"}"\n')
        for args in (
            ["check-config", str(cfg), "--secrets", str(secrets)],
            ["run", "--config", str(cfg), "--secrets", str(secrets), "--duration", "1"],
        ):
            r = cli(args, env=SECRET_ENV)
            out = r.stdout + r.stderr
            assert r.returncode == 2, (name, args[0], out)
            assert "Traceback" not in out
            for secret in [*SECRET_ENV.values(), "cli-file-secret-7a8b"]:
                assert secret not in out, (name, args[0], out)
    r = cli(["check-config", str(tmp_path / "typo.toml")], env=SECRET_ENV)
    assert "hedge.BTC.account: no account named 'typo'" in r.stderr


def test_non_finite_values_are_refused_by_check_config_and_run(tmp_path: Path) -> None:
    cfg = tmp_path / "nan.toml"
    cfg.write_text(
        HEDGE + '[[positions]]\nunderlying = "BTC"\nkind = "spot"\nqty = nan\n'
        f'[journal]\npath = "{tmp_path / "j.sqlite"}"\n'
    )
    for args in (["check-config", str(cfg)], ["run", "--config", str(cfg), "--duration", "1"]):
        r = cli(args)
        assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr
        assert r.stderr.strip().count("\n") == 0, r.stderr  # one clear line
        assert "positions.0.qty: Input should be a finite number (got nan)" in r.stderr
    r = cli(["check-config", str(cfg)], env={"HEDGEBOT_HEDGE__BTC__POLICY__BAND": "inf"})
    assert r.returncode == 2 and "hedge.BTC.policy.band" in r.stderr


def test_unknown_environment_variable_is_refused(tmp_path: Path) -> None:
    cfg = tmp_path / "c.toml"
    cfg.write_text(HEDGE)
    r = cli(["check-config", str(cfg)], env={"HEDGEBOT_EXECUTON__MODE": "twap"})
    assert r.returncode == 2 and "HEDGEBOT_EXECUTON__MODE" in r.stderr
    r = cli(["check-config", str(cfg)], env={"HEDGEBOT_ACCOUNTS__GHOST__API_KEY": "ghost-key-99"})
    assert r.returncode == 2 and "no account 'ghost'" in r.stderr
    assert "ghost-key-99" not in r.stderr


def test_missing_directory_and_unreadable_config_exit_2_with_one_line(tmp_path: Path) -> None:
    binary = tmp_path / "bin.toml"
    binary.write_bytes(b"\xff\xfe\x00")
    for target, words in (
        (tmp_path / "missing.toml", "file not found"),
        (tmp_path, "is a directory"),
        (binary, "not valid TOML"),
    ):
        for args in (
            ["run", "--config", str(target), "--duration", "1"],
            ["check-config", str(target)],
            ["halt", "--config", str(target)],
        ):
            r = cli(args)
            assert r.returncode == 2, (args, r.stderr)
            assert "Traceback" not in r.stderr and words in r.stderr, (args, r.stderr)
            assert r.stderr.strip().count("\n") == 0, r.stderr


def test_halt_from_another_directory_writes_the_file_the_config_names(tmp_path: Path) -> None:
    conf = tmp_path / "etc"
    conf.mkdir()
    cfg = conf / "bot.toml"
    cfg.write_text(HEDGE + '[risk]\nhalt_file = "state/HALT"\n')
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    r = cli(["halt", "--config", "../etc/bot.toml", "--reason", "drill"], cwd=elsewhere)
    assert r.returncode == 0, r.stderr
    assert (conf / "state" / "HALT").exists() and not (elsewhere / "state").exists()
    assert str(conf / "state" / "HALT") in r.stdout
    # check-config shows the same absolute path, from any directory.
    shown = json.loads(cli(["check-config", str(cfg)], cwd=ROOT).stdout)["risk"]["halt_file"]
    assert shown == str(conf / "state" / "HALT")
    r = cli(["halt", "--config", str(cfg), "--clear"], cwd=ROOT)
    assert r.returncode == 0 and not (conf / "state" / "HALT").exists()
    # A config broken elsewhere still halts (the kill switch must not wait for a fix).
    cfg.write_text(HEDGE + '[risk]\nhalt_file = "state/HALT"\nmax_order_notional_usd = -1\n')
    r = cli(["halt", "--config", str(cfg)], cwd=elsewhere)
    assert r.returncode == 0 and (conf / "state" / "HALT").exists(), r.stderr
    assert "risk.max_order_notional_usd" in r.stderr and "halting anyway" in r.stderr
