"""Trigger policies: when a drift from target is worth a hedge, and where the hedge goes.

Adding a policy: one module here returning a `Band` from `band_for`, its config model in
bot/policy_config.py and one member of that module's union.
"""

from bot.core.policy.band import BandPolicy
from bot.core.policy.base import (
    Aim,
    Band,
    BandUnit,
    Goal,
    Memory,
    Modifiers,
    TriggerPolicy,
    Unit,
    policy_vol,
)
from bot.core.policy.cost import WhalleyWilmott, Zakamouline
from bot.core.policy.decide import HedgeDecision, decide

__all__ = [
    "Aim",
    "Band",
    "BandPolicy",
    "BandUnit",
    "Goal",
    "HedgeDecision",
    "Memory",
    "Modifiers",
    "TriggerPolicy",
    "Unit",
    "WhalleyWilmott",
    "Zakamouline",
    "decide",
    "policy_vol",
]
