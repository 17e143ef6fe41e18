"""The MQTT payload models: what they accept, what they refuse, and the exported JSON schemas."""

from __future__ import annotations

import json
from typing import Any

import pytest
from pydantic import ValidationError

from bot.io.mqtt_schema import json_schemas
from bot.io.mqtt_schema_in import (
    COMMAND_NAMES,
    ExternalPositionIn,
    FlattenCommand,
    HedgeNowCommand,
    SetCommand,
    parse_command,
)
from bot.io.mqtt_schema_out import CommandReply, EventMessage, StateMessage

SIG = "a" * 64


@pytest.mark.parametrize(
    "doc",
    [
        {"id": "1", "cmd": "pause"},
        {"id": "1", "cmd": "resume", "args": {}},
        {"id": "1", "cmd": "hedge-now"},
        {"id": "1", "cmd": "hedge-now", "args": {"underlying": "BTC"}},
        {"id": "1", "cmd": "flatten", "args": {"confirm": True}},
        {"id": "1", "cmd": "flatten", "args": {"underlying": "ETH", "confirm": "FLATTEN"}},
        {"id": "1", "cmd": "set", "args": {"path": "hedge.BTC.policy.band", "value": 0.2}},
        {"id": "1", "cmd": "set", "args": {"path": "engine.hedge_view", "value": "coin"}},
        {"id": "1", "cmd": "set", "args": {"path": "risk.max_order_contracts", "value": None}},
        {"id": "1", "cmd": "reload"},
        {"id": "op-7:2026", "cmd": "status", "ts": 1_767_225_600_000, "sig": SIG},
        {"id": "1", "cmd": "halt"},
        {"id": "1", "cmd": "halt", "args": {"reason": "venue incident #42"}},
        {"id": "1", "cmd": "set-trading-state", "args": {"state": "reducing_only"}},
        {"id": "1", "cmd": "set-trading-state", "args": {"state": "active", "reason": "ok"}},
    ],
)
def test_valid_commands(doc: dict[str, Any]) -> None:
    cmd = parse_command(doc)
    assert cmd.cmd == doc["cmd"] and cmd.id == doc["id"]


def test_command_types_and_defaults() -> None:
    c = parse_command({"id": "1", "cmd": "hedge-now"})
    assert isinstance(c, HedgeNowCommand) and c.args.underlying is None and c.ts is None
    f = parse_command({"id": "1", "cmd": "flatten", "args": {"confirm": "FLATTEN"}})
    assert isinstance(f, FlattenCommand) and f.args.underlying is None
    s = parse_command({"id": "1", "cmd": "set", "args": {"path": "a.b", "value": [1, 2]}})
    assert isinstance(s, SetCommand) and s.args.value == [1, 2]


@pytest.mark.parametrize(
    ("doc", "where"),
    [
        ({"cmd": "pause"}, "id"),
        ({"id": "", "cmd": "pause"}, "id"),
        ({"id": "x" * 129, "cmd": "pause"}, "id"),
        ({"id": "a b", "cmd": "pause"}, "id"),
        ({"id": 5, "cmd": "pause"}, "id"),
        ({"id": "1"}, "cmd"),
        ({"id": "1", "cmd": "PAUSE"}, "cmd"),
        ({"id": "1", "cmd": "pause", "force": True}, "force"),
        ({"id": "1", "cmd": "pause", "args": {"x": 1}}, "x"),
        ({"id": "1", "cmd": "flatten"}, "args"),
        ({"id": "1", "cmd": "flatten", "args": {}}, "confirm"),
        ({"id": "1", "cmd": "flatten", "args": {"confirm": 1}}, "confirm"),
        ({"id": "1", "cmd": "flatten", "args": {"confirm": 1.0}}, "confirm"),
        ({"id": "1", "cmd": "flatten", "args": {"confirm": "true"}}, "confirm"),
        ({"id": "1", "cmd": "flatten", "args": {"confirm": "flatten"}}, "confirm"),
        ({"id": "1", "cmd": "flatten", "args": {"confirm": False}}, "confirm"),
        ({"id": "1", "cmd": "hedge-now", "args": {"underlying": "btc"}}, "underlying"),
        ({"id": "1", "cmd": "set", "args": {"path": "a.b"}}, "value"),
        ({"id": "1", "cmd": "set", "args": {"path": "a..b", "value": 1}}, "path"),
        ({"id": "1", "cmd": "set", "args": {"value": 1}}, "path"),
        ({"id": "1", "cmd": "pause", "ts": -1}, "ts"),
        ({"id": "1", "cmd": "pause", "sig": "xyz"}, "sig"),
        ({"id": "1", "cmd": "pause", "sig": "a" * 63}, "sig"),
        ({"id": "1", "cmd": "halt", "args": {"reason": ""}}, "reason"),
        ({"id": "1", "cmd": "halt", "args": {"reason": "x" * 201}}, "reason"),
        ({"id": "1", "cmd": "halt", "args": {"reason": "a\nb"}}, "reason"),
        ({"id": "1", "cmd": "halt", "args": {"state": "active"}}, "state"),
        ({"id": "1", "cmd": "set-trading-state"}, "args"),
        ({"id": "1", "cmd": "set-trading-state", "args": {"state": "paused"}}, "state"),
        ({"id": "1", "cmd": "set-trading-state", "args": {"state": "HALTED"}}, "state"),
    ],
)
def test_invalid_commands(doc: dict[str, Any], where: str) -> None:
    with pytest.raises(ValidationError) as e:
        parse_command(doc)
    assert where in str(e.value)


def test_external_position() -> None:
    p = ExternalPositionIn.model_validate_json(
        '{"source": "otc", "symbol": "BTC-27JUN26-70000-C", "underlying": "BTC", "qty": -3,'
        ' "delta_coin": -1.4, "ttl_s": 3600}'
    )
    assert p.qty == -3.0 and p.expires_at_ms is None and p.ttl_s == 3600
    ExternalPositionIn(source="a", symbol="b", underlying="ETH", qty=0, expires_at_ms=1)


@pytest.mark.parametrize(
    "patch",
    [
        {},  # no expiry
        {"ttl_s": 10, "expires_at_ms": 5},  # both
        {"ttl_s": 0},
        {"ttl_s": 1, "qty": "NaN"},
        {"ttl_s": 1, "extra": 1},
        {"ttl_s": 1, "underlying": "btc"},
        {"ttl_s": 1, "source": ""},
    ],
)
def test_external_position_invalid(patch: dict[str, Any]) -> None:
    doc: dict[str, Any] = {"source": "otc", "symbol": "X", "underlying": "BTC", "qty": 1.0}
    doc.update(patch)
    with pytest.raises(ValidationError):
        ExternalPositionIn.model_validate_json(json.dumps(doc))


def test_outbound_models_allow_engine_detail() -> None:
    s = StateMessage.model_validate(
        {
            "bot_id": "a",
            "ts_ms": 1,
            "trading_state": "active",
            "underlyings": {"BTC": {"delta_coin": 0.1, "delta_usd": 6000, "beta": 1.0}},
            "new_field": {"x": 1},
        }
    )
    assert s.underlyings["BTC"].delta_coin == 0.1
    e = EventMessage.model_validate(
        {"bot_id": "a", "kind": "fill", "event": "order.filled", "ts_ms": 1, "qty": 2}
    )
    assert e.model_dump()["qty"] == 2
    r = CommandReply(id="1", ok=False, error="nope", ts_ms=1)
    assert r.result is None


def test_json_schemas_cover_every_topic() -> None:
    schemas = json_schemas()
    assert set(schemas) == {"cmd", "cmd/reply", "positions/in", "state", "events", "status"}
    text = json.dumps(schemas)  # all JSON-serializable
    assert "FLATTEN" in text
    cmd_schema = schemas["cmd"]
    tags = set(cmd_schema["discriminator"]["mapping"])
    assert tags == set(COMMAND_NAMES)
    assert schemas["positions/in"]["additionalProperties"] is False


def test_documented_schemas_match_the_code() -> None:
    """docs/mqtt-schemas.json is what the README points operators to: keep it generated."""
    import json
    from pathlib import Path

    from bot.io.mqtt_schema import json_schemas

    doc = Path(__file__).resolve().parents[1] / "docs" / "mqtt-schemas.json"
    assert json.loads(doc.read_text()) == json.loads(json.dumps(json_schemas())), (
        "regenerate: python -m bot.io.mqtt_schema > docs/mqtt-schemas.json"
    )


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        (
            {"id": "1", "cmd": "flatten"},
            'args: flatten trades: args.confirm must be JSON true or the string "FLATTEN", '
            "and it is missing",
        ),
        (
            {"id": "1", "cmd": "flatten", "args": {"underlying": "BTC"}},
            'args: flatten trades: args.confirm must be JSON true or the string "FLATTEN", '
            "and it is missing",
        ),
        (
            {"id": "1", "cmd": "flatten", "args": {"confirm": False}},
            'args.confirm: flatten trades: args.confirm must be JSON true or the string "FLATTEN"'
            ", got false",
        ),
    ],
)
def test_flatten_without_confirm_names_confirm_and_the_rule(
    payload: dict[str, Any], expected: str
) -> None:
    from bot.io.mqtt_commands import describe_validation

    with pytest.raises(ValidationError) as e:
        parse_command(payload)
    assert describe_validation(e.value) == expected


def test_positions_command_takes_no_args() -> None:
    assert parse_command({"id": "p", "cmd": "positions"}).cmd == "positions"
    with pytest.raises(ValidationError):
        parse_command({"id": "p", "cmd": "positions", "args": {"all": True}})
