"""`set` rules (bot/config_set.py): strict types, restart-only settings, lower-only risk limits;
and the pure caps on external positions (bot/core/external.py)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.config_ops import ExternalConfig
from bot.config_set import with_setting
from bot.core.external import External, check_external

CONFIG = """
[risk]
max_order_notional_usd = 1_000_000
max_orders_per_minute = 30
liquidation_distance_warn = 0.15
liquidation_distance_reduce = 0.08
halt_file = "HALT"
[risk.max_position_contracts]
"BTC/USDT:USDT" = 50
[hedge.BTC]
instrument = "BTC/USDT:USDT"
[hedge.BTC.policy]
kind = "band"
band = 0.5
"""


@pytest.fixture
def loaded(tmp_path: Path) -> Settings:
    path = tmp_path / "c.toml"
    path.write_text(CONFIG)
    return load_settings(path, env={})


def refusal(s: Settings, path: str, value: Any, file: Settings | None = None) -> str:
    with pytest.raises(ConfigError) as e:
        with_setting(s, path, value, file)
    return e.value.render()


@pytest.mark.parametrize("value", ["0.5", True, "1e99", None, [0.5], {"v": 1}, float("nan")])
def test_numbers_are_strict(loaded: Settings, value: Any) -> None:
    msg = refusal(loaded, "hedge.BTC.policy.band", value)
    assert "hedge.BTC.policy.band" in msg


def test_the_json_number_hint_only_where_text_was_given(loaded: Settings) -> None:
    assert "must be a JSON number" in refusal(loaded, "hedge.BTC.policy.band", "0.5")
    negative = refusal(loaded, "hedge.BTC.policy.band", -1)
    assert "greater than 0" in negative and "JSON number" not in negative


def test_numbers_accept_json_numbers(loaded: Settings) -> None:
    assert with_setting(loaded, "hedge.BTC.policy.band", 0.25).hedge["BTC"].policy.band == 0.25
    assert with_setting(loaded, "hedge.BTC.policy.band", 1).hedge["BTC"].policy.band == 1.0
    assert with_setting(loaded, "hedge.BTC.enabled", False).hedge["BTC"].enabled is False
    assert "hedge.BTC.enabled" in refusal(loaded, "hedge.BTC.enabled", "false")
    assert "finite" in refusal(loaded, "hedge.BTC.policy.band", float("inf"))
    assert with_setting(loaded, "execution.mode", "twap").execution.mode == "twap"
    assert "execution.mode" in refusal(loaded, "execution.mode", "yolo")


@pytest.mark.parametrize(
    "path",
    [
        "accounts.sim.mode",
        "mqtt.port",
        "journal.path",
        "sim.speed",
        "positions",
        "external.max_sources",
        "bot_id",
        "hedge.BTC.instrument",
        "hedge.BTC.account",
        "risk.halt_file",
    ],
)
def test_restart_only_settings_are_refused(loaded: Settings, path: str) -> None:
    assert "restart-only: edit the file and restart" in refusal(loaded, path, "x")


def test_whole_tables_and_unknown_settings_are_refused(loaded: Settings) -> None:
    assert "one setting at a time" in refusal(loaded, "hedge.BTC", {"band": 1})
    assert "one setting at a time" in refusal(loaded, "risk", {})
    assert "no such setting" in refusal(loaded, "hedge.ETH.policy.band", 1)
    assert "no such setting" in refusal(loaded, "risk.max_everything", 1)
    assert "secrets cannot be set live" in refusal(loaded, "hedge.BTC.api_key", "k")


def test_risk_limits_go_down_live_and_back_up_to_the_file_value(loaded: Settings) -> None:
    file = loaded
    lower = with_setting(loaded, "risk.max_order_notional_usd", 500_000, file)
    assert lower.risk.max_order_notional_usd == 500_000
    msg = refusal(lower, "risk.max_order_notional_usd", 2_000_000, file)
    assert "risk.max_order_notional_usd" in msg and "2000000" in msg
    assert "to raise it, edit the file and reload" in msg
    back = with_setting(lower, "risk.max_order_notional_usd", 1_000_000, file)
    assert back.risk.max_order_notional_usd == 1_000_000
    # None means "not checked": looser than any number.
    assert "can only be lowered" in refusal(loaded, "risk.max_orders_per_minute", None, file)
    # A limit the file leaves unset may be set to anything (tighter than none).
    assert with_setting(loaded, "risk.max_order_contracts", 5, file).risk.max_order_contracts == 5
    # Distances below which the bot reduces: only raised (tightened) live.
    assert "can only be raised" in refusal(loaded, "risk.liquidation_distance_reduce", 0.05, file)
    assert with_setting(loaded, "risk.liquidation_distance_reduce", 0.1, file)


def test_position_limits_per_symbol_are_lower_only(loaded: Settings) -> None:
    ok = with_setting(loaded, "risk.max_position_contracts", {"BTC/USDT:USDT": 20})
    assert ok.risk.max_position_contracts == {"BTC/USDT:USDT": 20}
    msg = refusal(loaded, "risk.max_position_contracts", {"BTC/USDT:USDT": 80})
    assert "risk.max_position_contracts.BTC/USDT:USDT" in msg and "to raise it" in msg
    assert "to raise it" in refusal(loaded, "risk.max_position_contracts", {})  # removed


# --- external caps -------------------------------------------------------------------------------

NOW = 1_800_000_000_000
CAPS = ExternalConfig(
    max_sources=2,
    max_positions=3,
    max_abs_qty=1000,
    max_abs_delta_coin_per_source=10,
    max_abs_delta_coin_total=15,
    max_ttl_s=3600,
)
Store = dict[tuple[str, str], External]


def check(
    store: Store, source: str, qty: float, delta: float | None, ttl_s: float = 60, sym: str = "X"
) -> str | None:
    return check_external(
        CAPS, store, (source, sym), "BTC", qty, delta, NOW + int(ttl_s * 1000), NOW
    )


def test_external_caps() -> None:
    store: Store = {}
    assert check(store, "a", 1, 5.0) is None
    assert "external.max_abs_qty" in (check(store, "a", 1e300, None) or "")
    assert "external.max_ttl_s" in (check(store, "a", 1, 1.0, ttl_s=366 * 86_400) or "")
    assert "external.max_abs_delta_coin_per_source" in (check(store, "a", 1, 1e9) or "")
    store[("a", "X")] = External("BTC", 1, 8.0, NOW + 60_000)
    # Net of one source: 8 + 5 > 10; replacing its own X by 5 is fine.
    assert "source 'a'" in (check(store, "a", 1, 5.0, sym="Y") or "")
    assert check(store, "a", 1, 5.0) is None
    store[("b", "X")] = External("BTC", 1, 6.0, NOW + 60_000)
    assert "external.max_abs_delta_coin_total" in (check(store, "b", 1, 3.0, sym="Y") or "")
    assert "external.max_sources" in (check(store, "c", 1, 0.1) or "")
    store[("b", "Z")] = External("BTC", 1, None, NOW + 60_000)
    assert "external.max_positions" in (check(store, "b", 1, 0.1, sym="W") or "")
    # Without delta_coin, |qty x coin per contract| bounds the delta the position can carry.
    bound = check_external(CAPS, {}, ("a", "P"), "BTC", 500, None, NOW + 1000, NOW, 500.0)
    assert "|qty x contract size| 500 coin is above 10" in (bound or "")
    assert check_external(CAPS, {}, ("a", "P"), "BTC", 5, None, NOW + 1000, NOW, 5.0) is None
    # Removing is always allowed, even beyond the caps.
    assert check(store, "c", 0, None) is None
    # Other underlyings do not count toward BTC's total.
    eth: Store = {("a", "E"): External("ETH", 1, 9.0, NOW + 60_000)}
    assert check(eth, "b", 1, 9.0) is None
