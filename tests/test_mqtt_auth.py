"""HMAC-SHA256 command authentication: canonical form, freshness, tampering, replays."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from bot.io.command_auth import AuthError, ReplayCache, canonical_json, sign, signed, verify

SECRET = "k3y"
NOW = 1_767_225_600_000


def test_canonical_json_is_sorted_compact_and_without_sig() -> None:
    cmd = {"sig": "ab", "id": "x", "cmd": "set", "args": {"value": 1.5, "path": "a.b"}, "ts": 5}
    assert canonical_json(cmd) == (
        b'{"args":{"path":"a.b","value":1.5},"cmd":"set","id":"x","ts":5}'
    )


def test_signature_matches_an_independent_implementation() -> None:
    cmd = {"id": "é1", "cmd": "pause", "ts": NOW}
    text = json.dumps(cmd, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    expected = hmac.new(SECRET.encode(), text.encode(), hashlib.sha256).hexdigest()
    assert sign(cmd, SECRET) == expected
    assert signed(cmd, SECRET, NOW)["sig"] == expected


def test_valid_command_accepted_regardless_of_key_order_and_case() -> None:
    cmd = signed({"id": "a", "cmd": "hedge-now", "args": {"underlying": "BTC"}}, SECRET, NOW)
    verify(cmd, SECRET, NOW, 30)
    reordered = dict(reversed(list(cmd.items())))
    verify(reordered, SECRET, NOW + 29_000, 30)
    verify({**cmd, "sig": cmd["sig"].upper()}, SECRET, NOW - 29_000, 30)


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda c: {**c, "sig": "0" * 64}, "bad signature"),
        (lambda c: {**c, "cmd": "flatten"}, "bad signature"),
        (lambda c: {**c, "args": {"underlying": "ETH"}}, "bad signature"),
        (lambda c: {**c, "ts": c["ts"] + 1}, "bad signature"),
        (lambda c: {k: v for k, v in c.items() if k != "sig"}, "missing sig"),
        (lambda c: {k: v for k, v in c.items() if k != "ts"}, "missing or invalid ts"),
        (lambda c: {**c, "ts": True}, "missing or invalid ts"),
        (lambda c: {**c, "ts": str(c["ts"])}, "missing or invalid ts"),
        (lambda c: {**c, "sig": "ü" * 64}, "bad signature"),
    ],
)
def test_tampered_or_incomplete_commands_rejected(mutate, message) -> None:  # type: ignore[no-untyped-def]
    cmd = signed({"id": "a", "cmd": "hedge-now", "args": {"underlying": "BTC"}}, SECRET, NOW)
    with pytest.raises(AuthError, match=message):
        verify(mutate(cmd), SECRET, NOW, 30)


def test_wrong_secret_rejected() -> None:
    cmd = signed({"id": "a", "cmd": "pause"}, "other", NOW)
    with pytest.raises(AuthError, match="bad signature"):
        verify(cmd, SECRET, NOW, 30)


@pytest.mark.parametrize("skew_ms", [30_001, -30_001, 10**9])
def test_stale_or_future_ts_rejected(skew_ms: int) -> None:
    cmd = signed({"id": "a", "cmd": "pause"}, SECRET, NOW)
    with pytest.raises(AuthError, match="stale ts"):
        verify(cmd, SECRET, NOW + skew_ms, 30)


def test_bytes_secret_equals_str_secret() -> None:
    cmd = signed({"id": "a", "cmd": "pause"}, SECRET, NOW)
    verify(cmd, SECRET.encode(), NOW, 30)


def test_replay_cache_rejects_same_id_and_sig_within_window() -> None:
    cache = ReplayCache(max_age_s=30)
    cache.check_and_add("a", "ff", NOW, NOW)
    with pytest.raises(AuthError, match="replayed"):
        cache.check_and_add("a", "FF", NOW, NOW + 10_000)
    cache.check_and_add("a", "ee", NOW, NOW + 10_000)  # same id, new signature: a new command
    cache.check_and_add("b", "ff", NOW, NOW + 10_000)


def test_replay_cache_forgets_after_the_ts_is_stale_anyway() -> None:
    cache = ReplayCache(max_age_s=30)
    cache.check_and_add("a", "ff", NOW, NOW)
    cache.check_and_add("a", "ff", NOW, NOW + 30_001)  # verify() would refuse this ts now
    assert len(cache) == 1


def test_replay_cache_refuses_rather_than_forgets_when_full() -> None:
    cache = ReplayCache(max_age_s=30, max_entries=3)
    for i in range(3):
        cache.check_and_add(str(i), "ff", NOW, NOW)
    with pytest.raises(AuthError, match="full"):
        cache.check_and_add("3", "ff", NOW, NOW)
    with pytest.raises(AuthError, match="replayed"):
        cache.check_and_add("0", "ff", NOW, NOW + 1)
    cache.check_and_add("3", "ff", NOW + 31_000, NOW + 31_000)  # expired entries pruned
    assert len(cache) == 1
