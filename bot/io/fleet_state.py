"""What the broker told `hedgebot status` and `hedgebot fleet` about each bot: the retained
status and state messages, folded into one BotView per bot id."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any


@dataclass
class BotView:
    """What the broker told us about one bot."""

    bot_id: str
    status: str | None = None  # "online" / "offline" / None if never seen
    state: dict[str, Any] | None = None
    updated_ms: int = 0
    extra: dict[str, Any] = field(default_factory=dict)


def apply_message(
    views: dict[str, BotView], prefix: str, topic: str, payload: bytes, now_ms: int
) -> str | None:
    """Fold one message into `views`; returns the bot id it was about, or None if ignored."""
    parts = topic.split("/")
    head = prefix.split("/")
    if len(parts) != len(head) + 2 or parts[: len(head)] != head:
        return None
    bot_id, kind = parts[len(head)], parts[len(head) + 1]
    if not payload:  # a cleared retained message
        return None
    if kind == "status":
        view = views.setdefault(bot_id, BotView(bot_id))
        view.status = payload.decode("utf-8", "replace").strip()
    elif kind == "state":
        try:
            doc = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(doc, dict):
            return None
        view = views.setdefault(bot_id, BotView(bot_id))
        view.state = doc
    else:
        return None
    view.updated_ms = now_ms
    return bot_id
