"""The trigger policy of each underlying, built once per settings object."""

from __future__ import annotations

from bot.config import Settings
from bot.core.policy import TriggerPolicy
from bot.policy_config import policy_for


class Policies:
    """The policy of each underlying, built once per settings object (a decision asks for it
    on every evaluation; building validates the config again)."""

    def __init__(self) -> None:
        self._settings: Settings | None = None
        self._built: dict[str, TriggerPolicy] = {}

    def of(self, settings: Settings, underlying: str) -> TriggerPolicy:
        if settings is not self._settings:
            self._settings, self._built = settings, {}
        policy = self._built.get(underlying)
        if policy is None:
            policy = self._built[underlying] = policy_for(settings.hedge[underlying])
        return policy
