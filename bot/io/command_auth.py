"""Command authentication: HMAC-SHA256 over the canonical JSON of a command, a fresh timestamp,
and a replay cache. Pure functions; time is always passed in (epoch ms).

The signer builds the command as a JSON object with `ts` set and without `sig`, serializes it
canonically (sorted keys, separators "," and ":", UTF-8, non-ASCII kept as is) and adds
`sig` = hex(HMAC-SHA256(secret, that text)). Signing the decoded object rather than the raw bytes
lets any JSON tool produce a valid signature regardless of whitespace or key order.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections import OrderedDict
from collections.abc import Mapping
from typing import Any


class AuthError(Exception):
    """A command that failed authentication; the message is safe to send back."""


def canonical_json(command: Mapping[str, Any]) -> bytes:
    """The bytes that are signed: the command without `sig`, keys sorted, compact."""
    body = {k: v for k, v in command.items() if k != "sig"}
    return json.dumps(
        body, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False
    ).encode("utf-8")


def sign(command: Mapping[str, Any], secret: str | bytes) -> str:
    key = secret.encode("utf-8") if isinstance(secret, str) else secret
    return hmac.new(key, canonical_json(command), hashlib.sha256).hexdigest()


def signed(command: Mapping[str, Any], secret: str | bytes, now_ms: int) -> dict[str, Any]:
    """A copy of `command` with `ts` (if missing) and `sig` set: what an operator tool sends."""
    out = dict(command)
    out.setdefault("ts", now_ms)
    out.pop("sig", None)
    out["sig"] = sign(out, secret)
    return out


def verify(command: Mapping[str, Any], secret: str | bytes, now_ms: int, max_age_s: float) -> None:
    """Raise AuthError unless `command` has a fresh `ts` and a valid `sig`."""
    ts = command.get("ts")
    sig = command.get("sig")
    # bool is an int subclass: refuse it so `true` is never read as 1 ms after the epoch.
    if not isinstance(ts, int) or isinstance(ts, bool):
        raise AuthError("missing or invalid ts (epoch ms required when commands are signed)")
    if not isinstance(sig, str) or not sig:
        raise AuthError("missing sig (hex HMAC-SHA256 required when commands are signed)")
    if abs(now_ms - ts) > max_age_s * 1000.0:
        raise AuthError(f"stale ts: {abs(now_ms - ts) / 1000.0:.1f}s from now, max {max_age_s}s")
    try:
        expected = sign(command, secret)
    except (TypeError, ValueError):
        # NaN/Infinity or an unserializable value cannot have been signed canonically.
        raise AuthError("command cannot be serialized canonically") from None
    # compare_digest on ASCII str keeps the comparison constant-time over the attacker's input.
    if not sig.isascii() or not hmac.compare_digest(sig.lower(), expected):
        raise AuthError("bad signature")


class ReplayCache:
    """Remembers (id, sig) of accepted commands until their ts is no longer fresh, after which
    verify() would reject a replay anyway. Bounded: when full it refuses new entries rather than
    forgetting old ones, because forgetting would let a replay through."""

    def __init__(self, max_age_s: float, max_entries: int = 10_000) -> None:
        self._max_age_ms = max_age_s * 1000.0
        self._max_entries = max_entries
        # key -> expiry (epoch ms); insertion order is close to expiry order, good enough for
        # pruning from the front, and exact expiry is checked per entry anyway.
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()

    def __len__(self) -> int:
        return len(self._seen)

    def _prune(self, now_ms: int) -> None:
        while self._seen:
            key, expiry = next(iter(self._seen.items()))
            if expiry >= now_ms:
                break
            del self._seen[key]

    def check_and_add(self, cmd_id: str, sig: str, ts_ms: int, now_ms: int) -> None:
        """Raise AuthError if (cmd_id, sig) was seen and has not expired; otherwise remember it."""
        self._prune(now_ms)
        key = (cmd_id, sig.lower())
        expiry = self._seen.get(key)
        if expiry is not None and expiry >= now_ms:
            raise AuthError(f"replayed command id {cmd_id!r}")
        if len(self._seen) >= self._max_entries:
            raise AuthError("replay cache full; retry later")
        self._seen[key] = max(ts_ms, now_ms) + self._max_age_ms
