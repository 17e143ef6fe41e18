"""The trigger policy of each underlying, built once per settings object, and what a policy
needs of the book."""

from __future__ import annotations

from bot.config import Settings
from bot.core.policy import BandPolicy, TriggerPolicy
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


def needs_stats(policy: TriggerPolicy) -> bool:
    """Bands sized from gross notional, gamma, expiry or vol need the book statistics; the
    fixed band in its own unit needs none (they cost a pricing of the option book)."""
    return not isinstance(policy, BandPolicy) or policy.band_unit not in (None, policy.aim.unit)
