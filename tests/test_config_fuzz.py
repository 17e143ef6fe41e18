"""Fuzzing the config loader and `set` with secrets present everywhere they can come from
(the environment, a --secrets file): no error text, and no resolved dump, may hold one."""

from __future__ import annotations

import copy
import math
import random
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.config import ConfigError, load_settings, redacted_dump
from bot.config_set import with_setting
from tests import tomlw

SECRETS = {
    "HEDGEBOT_MQTT__COMMAND_SECRET": "cmd-secret-7f3a9c",
    "HEDGEBOT_MQTT__PASSWORD": "mqtt-pass-b81d2e",
    "HEDGEBOT_ACCOUNTS__SIM__API_KEY": "sim-key-4c5d6e",
    "HEDGEBOT_ACCOUNTS__DERI__API_KEY": "deri-key-0a1b2c",
    "HEDGEBOT_ACCOUNTS__DERI__SECRET": "deri-secret-9e8f7d",
}
# In the --secrets file, not the environment.
FILE_SECRETS = {
    "HEDGEBOT_ACCOUNTS__DERI__PASSWORD": "deri-pass-file-55aa",
    "HEDGEBOT_ACCOUNTS__SIM__SECRET": "sim-secret-file-66bb",
}
ALL_SECRETS = [*SECRETS.values(), *FILE_SECRETS.values()]

BASE: dict[str, Any] = {
    "bot_id": "fuzz",
    "log": {"level": "info"},
    "engine": {"hedge_view": "usd", "stale_after_s": 15.0},
    "execution": {"mode": "taker", "max_slippage_bps": 20.0, "order_timeout_s": 10.0},
    "risk": {"max_order_notional_usd": 1e6, "halt_file": "state/HALT", "price_collar_bps": 100},
    "journal": {"path": "state/j.sqlite"},
    "sim": {"seed": 1, "speed": 1.0, "underlyings": {"BTC": {"price": 60000.0, "vol": 0.6}}},
    "accounts": {
        "sim": {"exchange": "sim", "mode": "paper"},
        "deri": {"exchange": "deribit", "mode": "testnet"},
    },
    "hedge": {
        "BTC": {
            "account": "sim",
            "instrument": "BTC/USDT:USDT",
            "policy": {"kind": "band", "band": 0.5},
        }
    },
    "positions": [{"underlying": "BTC", "kind": "spot", "qty": 1.0}],
    "mqtt": {"enabled": False, "host": "127.0.0.1", "port": 1883},
    "external": {"max_sources": 10},
}

WRONG_VALUES: list[Any] = [
    "x",
    "nan",
    "1e99x",
    [1, 2],
    {"a": 1},
    True,
    -1,
    0,
    1e308,
    math.nan,
    math.inf,
    -math.inf,
    "",
]
BAD_ENUMS = [
    (("accounts", "sim", "mode"), "live"),
    (("accounts", "deri", "mode"), "live"),
    (("accounts", "sim", "exchange"), "kraken"),
    (("hedge", "BTC", "unit"), "btc"),
    (("log", "level"), "loud"),
    (("execution", "mode"), "yolo"),
    (("engine", "hedge_view"), "both"),
]
REQUIRED = [
    ("hedge", "BTC", "instrument"),
    ("hedge", "BTC", "policy", "band"),
    ("sim", "underlyings", "BTC", "price"),
    ("positions", 0, "qty"),
]
BAD_ENV = [
    ("HEDGEBOT_HEDGE__BTC__BAND", "abc"),
    ("HEDGEBOT_HEDGE__BTC__BAND", "inf"),
    ("HEDGEBOT_HEDGE__BTC__TARGET", "nan"),
    ("HEDGEBOT_EXECUTON__MODE", "taker"),
    ("HEDGEBOT_ACCOUNTS__GHOST__API_KEY", SECRETS["HEDGEBOT_ACCOUNTS__DERI__API_KEY"]),
    ("HEDGEBOT_ACCOUNTS__DERI__API_KEYY", SECRETS["HEDGEBOT_ACCOUNTS__DERI__SECRET"]),
    ("HEDGEBOT_ACCOUNTS__DERI__SECRET__X", SECRETS["HEDGEBOT_ACCOUNTS__DERI__SECRET"]),
    ("HEDGEBOT_MQTT__PORT", "not-a-port"),
    ("HEDGEBOT_ACCOUNTS__SIM__MODE", "live"),
]


def _leaves(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(doc, dict):
        return [p for k, v in doc.items() for p in _leaves(v, (*path, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _leaves(v, (*path, i))]
    return [path]


def _tables(doc: Any, path: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    if isinstance(doc, dict):
        return [path] + [p for k, v in doc.items() for p in _tables(v, (*path, k))]
    if isinstance(doc, list):
        return [p for i, v in enumerate(doc) for p in _tables(v, (*path, i))]
    return []


def _at(doc: Any, path: tuple[Any, ...]) -> Any:
    for p in path:
        doc = doc[p]
    return doc


def mutate(rng: random.Random, doc: dict[str, Any], env: dict[str, str]) -> str:
    """Break the config one way; returns what kind of break it was."""
    kind = rng.choice(["type", "unknown", "reference", "enum", "missing", "env"])
    if kind == "type":
        path = rng.choice(_leaves(doc))
        _at(doc, path[:-1])[path[-1]] = copy.deepcopy(rng.choice(WRONG_VALUES))
    elif kind == "unknown":
        path = rng.choice(_tables(doc))
        _at(doc, path)[rng.choice(["typo", "bandd", "api_kye", "Mode"])] = rng.choice([1, "v"])
    elif kind == "reference":
        target = rng.choice([("hedge", "BTC"), ("positions", 0)])
        _at(doc, target)["account"] = rng.choice(["typo", "nope", "Deri2", ""])
    elif kind == "enum":
        path, value = rng.choice(BAD_ENUMS)
        _at(doc, path[:-1])[path[-1]] = value
    elif kind == "missing":
        path = rng.choice(REQUIRED)
        _at(doc, path[:-1]).pop(path[-1], None)  # an earlier mutation may have removed it
    else:
        name, value = rng.choice(BAD_ENV)
        env[name] = value
    return kind


def assert_no_secret(text: str) -> None:
    for s in ALL_SECRETS:
        assert s not in text, f"secret {s!r} leaked in: {text}"


@pytest.fixture
def secrets_file(tmp_path: Path) -> Path:
    path = tmp_path / "secrets.env"
    path.write_text("".join(f"{k}={v}\n" for k, v in FILE_SECRETS.items()))
    return path


def test_a_thousand_broken_configs_never_show_a_secret(tmp_path: Path, secrets_file: Path) -> None:
    rng = random.Random(20261130)
    cfg = tmp_path / "fuzz.toml"
    refused: dict[str, int] = {}
    accepted = 0
    for _ in range(1200):
        doc = copy.deepcopy(BASE)
        env = dict(SECRETS)
        kinds = [mutate(rng, doc, env) for _ in range(rng.randint(1, 3))]
        cfg.write_text(tomlw.dumps(doc))
        try:
            s = load_settings(cfg, secrets_file, env=env)
        except ConfigError as e:
            for k in kinds:
                refused[k] = refused.get(k, 0) + 1
            text = e.render() + str(e) + e.one_line() + repr(e.problems)
            assert_no_secret(text)
            assert e.problems and all(path for path, _, _ in e.problems)
            continue
        accepted += 1  # a mutation may land on a value that is valid after all
        assert_no_secret(repr(redacted_dump(s)) + repr(s))
    assert sum(refused.values()) >= 1000 and accepted < 200, (refused, accepted)
    assert set(refused) == {"type", "unknown", "reference", "enum", "missing", "env"}


def test_the_reported_leaks_are_gone(tmp_path: Path, secrets_file: Path) -> None:
    cfg = tmp_path / "c.toml"
    doc = copy.deepcopy(BASE)
    doc["hedge"]["BTC"]["account"] = "typo"
    cfg.write_text(tomlw.dumps(doc))
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, secrets_file, env=dict(SECRETS))
    assert e.value.render().endswith("hedge.BTC.account: no account named 'typo'")
    assert_no_secret(e.value.render())
    doc = copy.deepcopy(BASE)
    doc["accounts"]["sim"]["mode"] = "live"
    cfg.write_text(tomlw.dumps(doc))
    with pytest.raises(ConfigError) as e:
        load_settings(cfg, secrets_file, env=dict(SECRETS))
    assert "accounts.sim: mode 'live' is not possible" in e.value.render()
    assert_no_secret(e.value.render())


# --- `set` with secrets loaded: errors and results never show them --------------------------------

SET_PATHS = [
    "hedge.BTC.policy.band",
    "hedge.BTC.account",
    "hedge.BTC",
    "risk.max_order_notional_usd",
    "risk.halt_file",
    "risk",
    "accounts.deri.api_key",
    "accounts.deri",
    "mqtt.password",
    "mqtt.command_secret",
    "execution.mode",
    "execution.instruments",
    "engine.stale_after_by_stream",
    "log.level",
    "nope.x",
]
JSON_VALUES = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(10**12), 10**12)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=20)
    | st.sampled_from(ALL_SECRETS),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=8,
)


@pytest.fixture(scope="module")
def loaded(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("set")
    cfg = tmp / "c.toml"
    cfg.write_text(tomlw.dumps(BASE))
    secrets = tmp / "secrets.env"
    secrets.write_text("".join(f"{k}={v}\n" for k, v in FILE_SECRETS.items()))
    return load_settings(cfg, secrets, env=dict(SECRETS))


@settings(
    max_examples=400, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(path=st.sampled_from(SET_PATHS), value=JSON_VALUES)
def test_set_never_shows_a_secret(loaded: Any, path: str, value: Any) -> None:
    try:
        new = with_setting(loaded, path, value)
    except ConfigError as e:
        assert_no_secret(e.render())
        return
    assert_no_secret(repr(redacted_dump(new)))
