"""Another daemon under our bot_id on the same broker (a config copied to a second server):
both would obey every command sent to that id (a flatten, a halt) and overwrite each other's
retained state. Each bridge publishes a retained marker of its instance on
`<prefix>/<bot_id>/instance`; a marker of another instance that arrives live (not the retained
copy handed out on subscribe, which may be a previous run's) raises the alert
`mqtt.bot_id_in_use`, and the bridge republishes its own marker once, so the other daemon
learns of it too. Hedging goes on: the broker is never on the money path.
"""

from __future__ import annotations

import json
import os
import secrets
import socket
from typing import Any

import structlog

from bot.io.mqtt_wire import dumps

log = structlog.get_logger("hedgebot.mqtt")


class Twins:
    def __init__(self) -> None:
        self.me = {
            "instance": secrets.token_hex(8),
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        self._seen: set[str] = set()

    def marker(self) -> bytes:
        return dumps(self.me)

    def other(self, payload: bytes, retained: bool) -> dict[str, Any] | None:
        """The other instance a live marker names, the first time it is seen (republish ours
        then); None for our own, a retained or a repeated marker, or a malformed one."""
        if retained:
            return None
        try:
            doc = json.loads(payload)
            instance = doc["instance"]
        except (ValueError, KeyError, TypeError):
            log.warning("mqtt.instance_malformed", size=len(payload))
            return None
        if not isinstance(instance, str) or instance == self.me["instance"]:
            return None
        if instance in self._seen:
            return None
        self._seen.add(instance)
        return {
            "other_instance": instance,
            "other_host": str(doc.get("host")),
            "other_pid": doc.get("pid"),
            "our_host": self.me["host"],
            "our_pid": self.me["pid"],
        }
