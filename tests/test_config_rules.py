"""Input safety rules of the config loader: finite numbers, environment variables, accounts,
live keys, path resolution and unreadable files (in-process, through load_settings)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, halt_file_of, load_settings, paths_of
from bot.io.mqtt_schema_in import ExternalPositionIn

HEDGE = '[hedge.BTC]\ninstrument = "BTC/USDT:USDT"\n[hedge.BTC.policy]\nkind = "band"\nband = 0.5\n'


def write(tmp_path: Path, text: str, name: str = "c.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def refused(path: Path | None, env: dict[str, str] | None = None, **kw: Path) -> str:
    with pytest.raises(ConfigError) as e:
        load_settings(path, env=env or {}, **kw)
    return e.value.render()


# --- finite numbers ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "field"),
    [
        (
            '[hedge.BTC]\ninstrument = "BTC/USDT:USDT"\n'
            '[hedge.BTC.policy]\nkind = "band"\nband = inf\n',
            "hedge.BTC.policy.band",
        ),
        (
            '[hedge.BTC]\ninstrument = "BTC/USDT:USDT"\ntarget = nan\n'
            '[hedge.BTC.policy]\nkind = "band"\nband = 1\n',
            "hedge.BTC.target",
        ),
        ('[[positions]]\nunderlying = "BTC"\nkind = "spot"\nqty = nan\n', "positions.0.qty"),
        ("[sim.balances]\nUSDT = inf\n", "sim.balances.USDT"),
        ("[risk]\nmax_order_notional_usd = inf\n", "risk.max_order_notional_usd"),
        ("[risk.max_position_contracts]\nX = -inf\n", "risk.max_position_contracts.X"),
        ("[engine]\nstale_after_by_stream = { book = nan }\n", "engine.stale_after_by_stream.book"),
        ("[external]\nmax_abs_delta_coin_total = inf\n", "external.max_abs_delta_coin_total"),
    ],
)
def test_nan_and_inf_in_the_file_are_refused_with_the_field(
    tmp_path: Path, text: str, field: str
) -> None:
    msg = refused(write(tmp_path, text))
    assert field in msg and "finite number" in msg


def test_nan_and_inf_from_the_environment_and_secrets_file_are_refused(tmp_path: Path) -> None:
    cfg = write(tmp_path, HEDGE)
    env = {"HEDGEBOT_HEDGE__BTC__POLICY__BAND": "inf", "HEDGEBOT_HEDGE__BTC__TARGET": "NaN"}
    msg = refused(cfg, env)
    assert "hedge.BTC.policy.band" in msg and "hedge.BTC.target" in msg and "finite" in msg
    secrets = write(tmp_path, "HEDGEBOT_EXECUTION__MAX_FEE_BPS=nan\n", "s.env")
    msg = refused(cfg, secrets_file=secrets)
    assert "execution.max_fee_bps" in msg and "finite" in msg


def test_external_positions_over_mqtt_must_be_finite() -> None:
    for body in (
        b'{"source": "a", "symbol": "X", "underlying": "BTC", "qty": NaN, "ttl_s": 5}',
        b'{"source": "a", "symbol": "X", "underlying": "BTC", "qty": 1, "delta_coin": Infinity,'
        b' "ttl_s": 5}',
        b'{"source": "a", "symbol": "X", "underlying": "BTC", "qty": 1, "ttl_s": Infinity}',
    ):
        with pytest.raises(ValueError, match="finite"):
            ExternalPositionIn.model_validate_json(body)


# --- environment and accounts --------------------------------------------------------------------


def test_unknown_environment_variable_is_refused_by_name(tmp_path: Path) -> None:
    cfg = write(tmp_path, HEDGE)
    msg = refused(cfg, {"HEDGEBOT_EXECUTON__MODE": "twap", "PATH": "/bin"})
    assert "HEDGEBOT_EXECUTON__MODE" in msg and "no setting 'executon'" in msg
    assert "twap" not in msg  # the value is never shown: it may be a secret
    assert "PATH" not in msg
    msg = refused(cfg, {"HEDGEBOT_EXECUTION__MODEE": "twap"})
    assert "execution.modee" in msg and "unknown setting" in msg


def test_an_account_exists_only_where_the_file_declares_it(tmp_path: Path) -> None:
    cfg = write(tmp_path, HEDGE + '[accounts.sim]\nexchange = "sim"\n')
    msg = refused(cfg, {"HEDGEBOT_ACCOUNTS__PHANTOM__API_KEY": "k-123456"})
    assert "HEDGEBOT_ACCOUNTS__PHANTOM__API_KEY" in msg and "no account 'phantom'" in msg
    assert "k-123456" not in msg
    msg = refused(cfg, {"HEDGEBOT_ACCOUNTS": '{"x": {"exchange": "sim"}}'})
    assert "HEDGEBOT_ACCOUNTS" in msg and "declared in the config file" in msg
    secrets = write(tmp_path, "HEDGEBOT_ACCOUNTS__GHOST__SECRET=s-999999\n", "s.env")
    msg = refused(cfg, secrets_file=secrets)
    assert "secrets file variable HEDGEBOT_ACCOUNTS__GHOST__SECRET" in msg
    assert "s-999999" not in msg
    # The declared account takes its key from the environment.
    s = load_settings(cfg, env={"HEDGEBOT_ACCOUNTS__SIM__API_KEY": "k"})
    assert list(s.accounts) == ["sim"] and s.accounts["sim"].api_key is not None


def test_live_needs_non_empty_keys(tmp_path: Path) -> None:
    cfg = write(
        tmp_path, '[accounts.d]\nexchange = "deribit"\nmode = "live"\nconfirm_live = true\n'
    )
    env = {"HEDGEBOT_ACCOUNTS__D__API_KEY": " ", "HEDGEBOT_ACCOUNTS__D__SECRET": "s"}
    assert "needs non-empty api_key and secret" in refused(cfg, env)
    env["HEDGEBOT_ACCOUNTS__D__API_KEY"] = "k"
    assert load_settings(cfg, env=env).accounts["d"].mode == "live"


# --- paths ---------------------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    conf_dir = tmp_path / "etc"
    conf_dir.mkdir()
    cfg = write(
        conf_dir,
        '[risk]\nhalt_file = "state/HALT"\n[journal]\npath = "../var/j.sqlite"\n'
        '[sim]\nstate_file = "/abs/sim.json"\n[mqtt]\nca_file = "ca.pem"\n',
    )
    seen = []
    for cwd in (tmp_path, conf_dir, Path("/")):
        monkeypatch.chdir(cwd)
        s = load_settings(Path(os.path.relpath(cfg, cwd)), env={})
        seen.append(paths_of(s))
        assert s.mqtt.ca_file == conf_dir / "ca.pem"
    assert (
        seen[0]
        == seen[1]
        == seen[2]
        == {
            "halt_file": str(conf_dir / "state" / "HALT"),
            "journal": str(tmp_path / "var" / "j.sqlite"),
            "sim_state_file": "/abs/sim.json",
        }
    )
    # An environment override is resolved against the same directory.
    s = load_settings(cfg, env={"HEDGEBOT_RISK__HALT_FILE": "other/HALT"})
    assert s.risk.halt_file == conf_dir / "other" / "HALT"
    assert halt_file_of(cfg, env={}) == conf_dir / "state" / "HALT"


def test_defaults_without_a_file_are_absolute(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    s = load_settings(None, env={})
    assert s.journal.path == tmp_path / "state" / "paper-journal.sqlite"


# --- files ---------------------------------------------------------------------------------------


def test_missing_directory_and_binary_files_give_one_line(tmp_path: Path) -> None:
    for path, rule in (
        (tmp_path / "nope.toml", "file not found"),
        (tmp_path, "is a directory"),
        (write(tmp_path, "", "bin.toml"), "not valid TOML"),
    ):
        if path.name == "bin.toml":
            path.write_bytes(b"\xff\xfe\x00bad")
        msg = refused(path)
        assert rule in msg and "\n" not in msg, msg
    cfg = write(tmp_path, HEDGE)
    assert "is a directory" in refused(cfg, secrets_file=tmp_path)
    assert "file not found" in refused(cfg, secrets_file=tmp_path / "none.env")


# --- what run would refuse at start, check-config refuses too -----------------------------------


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ('[[positions]]\nsymbol = "FOO/USDT"\nqty = 1\n' + HEDGE, "no simulated underlying 'FOO'"),
        ('[[positions]]\nsymbol = "BTC/EUR"\nqty = 1\n' + HEDGE, "does not list 'BTC/EUR'"),
        (
            '[hedge.BTC]\ninstrument = "BTC/USDC:USDC"\n'
            '[hedge.BTC.policy]\nkind = "band"\nband = 1\n',
            "not listed by the simulated",
        ),
        (
            '[hedge.ETH]\ninstrument = "BTC/USDT:USDT"\n'
            '[hedge.ETH.policy]\nkind = "band"\nband = 1\n',
            "not a delta-one ETH",
        ),
        (
            '[accounts.d]\nexchange = "deribit"\nmode = "testnet"\n'
            '[[positions]]\naccount = "d"\nsymbol = "BTC/USD:BTC"\nqty = 1\n',
            "starting positions are for sim and paper accounts",
        ),
    ],
)
def test_config_decided_startup_errors_are_config_errors(
    tmp_path: Path, text: str, words: str
) -> None:
    env = {"HEDGEBOT_ACCOUNTS__D__API_KEY": "k", "HEDGEBOT_ACCOUNTS__D__SECRET": "s"}
    assert words in refused(write(tmp_path, text), env if "accounts.d" in text else {})


def test_missing_tls_files_are_refused_when_mqtt_is_on(tmp_path: Path) -> None:
    (tmp_path / "ca.pem").write_text("x")
    text = HEDGE + '[mqtt]\nenabled = true\nca_file = "ca.pem"\ncert_file = "c.pem"\n'
    msg = refused(write(tmp_path, text + 'key_file = "k.pem"\n'))
    assert "mqtt.cert_file: file not found" in msg and "mqtt.key_file" in msg
    assert "mqtt.ca_file" not in msg


def test_example_shape_still_loads(tmp_path: Path) -> None:
    s = load_settings(write(tmp_path, HEDGE), env={})
    assert isinstance(s, Settings) and s.external.max_sources == 100


def test_position_limits_keep_the_symbol_case(tmp_path: Path) -> None:
    # Lower-cased, "btc/usdt:usdt" would never match the symbol and the limit would not apply.
    cfg = write(tmp_path, HEDGE + '[risk.max_position_contracts]\n"BTC/USDT:USDT" = 5\n')
    assert load_settings(cfg, env={}).risk.max_position_contracts == {"BTC/USDT:USDT": 5.0}
