"""The MQTT topics and commands of a bot, and the JSON schema of every payload, in and out.

Topics (prefix `hedgebot` by default, one subtree per bot):

    <prefix>/<bot_id>/status         retained "online" / "offline" (plain text; last will)
    <prefix>/<bot_id>/state          retained StateMessage
    <prefix>/<bot_id>/events         EventMessage, one per message
    <prefix>/<bot_id>/cmd            CommandIn (from the operator)
    <prefix>/<bot_id>/cmd/reply      CommandReply, exactly one per command that has an id
    <prefix>/<bot_id>/positions/in   ExternalPositionIn
    <prefix>/<bot_id>/instance       retained {instance, host, pid} of the daemon (mqtt_twins.py)

Commands (`{"id": ..., "cmd": ..., "args": {...}}`, plus `ts` and `sig` when a command secret is
set): pause, resume, hedge-now {underlying?}, flatten {underlying?, confirm}, set {path, value},
reload, status, positions, halt {reason?}, set-trading-state {state, reason?} and resolve-order
{client_id, status, confirm} (settles a stuck order: filled | cancelled | rejected). `pause`
stops deciding until `resume`; `halt` is the kill switch (trading state `halted`: the risk gate
refuses every order) and stays until `set-trading-state` with state `active` (or
`reducing_only`, which lets only orders that shrink a position through). The halt reason
recorded is "operator" (or "operator: <reason>").

The inbound models (commands, external positions) are in bot/io/mqtt_schema_in.py, the outbound
ones (state, events, replies) in bot/io/mqtt_schema_out.py. Here: their JSON schemas for the
README and docs/mqtt-schemas.json.
"""

from __future__ import annotations

import json
from typing import Any

from bot.io.mqtt_schema_in import COMMAND_ADAPTER, ExternalPositionIn
from bot.io.mqtt_schema_out import (
    STATUS_OFFLINE,
    STATUS_ONLINE,
    CommandReply,
    EventMessage,
    StateMessage,
)


def json_schemas() -> dict[str, dict[str, Any]]:
    """JSON Schema of every payload, keyed by topic suffix, for the README."""
    return {
        "cmd": COMMAND_ADAPTER.json_schema(),
        "cmd/reply": CommandReply.model_json_schema(),
        "positions/in": ExternalPositionIn.model_json_schema(),
        "state": StateMessage.model_json_schema(),
        "events": EventMessage.model_json_schema(),
        "status": {"type": "string", "enum": [STATUS_ONLINE, STATUS_OFFLINE]},
    }


if __name__ == "__main__":  # `python -m bot.io.mqtt_schema` prints them for the README
    print(json.dumps(json_schemas(), indent=2))
