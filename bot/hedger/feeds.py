"""Feed health: which feeds an underlying depends on, and whether any is down or stale.

Streams report data and errors as they happen (`data`, `failed`); a decision asks `problem(u,
now)`. Staleness is tracked incrementally: the last answer for an underlying is kept with the
earliest moment one of its feeds could go stale, so between that moment and any error or
registration a decision costs one comparison, not a walk over every feed.

Market streams (ticker, book) and the position poll speak all the time, so quiet beyond their
kind's limit (engine.stale_after_by_stream, default stale_after_s) is staleness. Account streams
(orders, fills, positions) are quiet whenever nothing happens: only their errors count. An account
can also be held by the shell as a whole (`hold`): a silent position stream, a pending REST
reconcile, a position read that lags our fills.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from bot.config import EngineConfig, StreamKind

FeedKey = tuple[str, str]  # (account, stream), stream "kind" or "kind:symbol"

# Streams that speak all the time, so that quiet is staleness.
STALE_KINDS: dict[str, StreamKind] = {
    "ticker": "ticker",
    "book": "book",
    "positions_poll": "positions_poll",
}
_NEVER = 2**62
_HOLD_ORDER = {"silent": 0, "reconciling": 1}


@dataclass(slots=True)
class FeedState:
    last_ok_ms: int = 0
    error: str | None = None
    since_ms: int = 0  # when the stream was started: its age counts from here until data comes
    # Since when a watch has been waiting without error or data (quiet timeouts keep it): a
    # watch waiting RESUBSCRIBED_S is subscribed, so messages from then on reach us.
    watching_since_ms: int | None = None


def stale_limit_s(eng: EngineConfig, kind: StreamKind) -> float:
    limit = eng.stale_after_by_stream.get(kind, eng.stale_after_s)
    if kind == "positions_poll":
        limit += eng.position_poll_s  # a poll speaks once per interval
    return limit


class FeedHealth:
    def __init__(
        self, engine_cfg: Callable[[], EngineConfig], underlying_of: Callable[[FeedKey], set[str]]
    ) -> None:
        """`underlying_of(feed)`: the underlyings a feed's data or account serves."""
        self._cfg = engine_cfg
        self._underlying_of = underlying_of
        self.feeds: dict[FeedKey, FeedState] = {}
        # account -> what -> (reason, from ms): a hold counts from its moment on
        self._holds: dict[str, dict[str, tuple[str, int]]] = {}
        self._version = 0  # bumped by anything but fresh data
        self._by_underlying: dict[str, list[tuple[FeedKey, FeedState]]] | None = None
        # underlying -> (version, answer, valid until ms) for answers of None
        self._cache: dict[str, tuple[int, int]] = {}

    # ---- what the shell reports ------------------------------------------------------------

    def register(self, key: FeedKey, now_ms: int) -> FeedState:
        feed = self.feeds.get(key)
        if feed is None:
            feed = self.feeds[key] = FeedState()
            self.changed()
        feed.since_ms = now_ms
        return feed

    def remove(self, key: FeedKey) -> None:
        if self.feeds.pop(key, None) is not None:
            self.changed()

    def data(self, feed: FeedState, now_ms: int) -> None:
        feed.last_ok_ms = now_ms  # only pushes deadlines later: cached answers stay valid
        feed.watching_since_ms = None

    def failed(self, feed: FeedState, error: str | None) -> None:
        if feed.error != error:
            feed.error = error
            self.changed()

    def hold(self, account: str, what: str, reason: str | None, from_ms: int = 0) -> None:
        """Hold (or release, reason None) every underlying that depends on `account`, from
        `from_ms` on (a deadline: a position message that must come before it)."""
        holds = self._holds.setdefault(account, {})
        if reason is None:
            if holds.pop(what, None) is not None:
                self.changed()
        elif holds.get(what) != (reason, from_ms):
            holds[what] = (reason, from_ms)
            self.changed()

    def held(self, account: str, what: str) -> bool:
        return what in self._holds.get(account, {})

    @property
    def version(self) -> int:
        """Bumped by anything but fresh data: a corridor set under another version is void."""
        return self._version

    def changed(self) -> None:
        """Feeds, errors, holds or the lines of an underlying changed: answers are recomputed."""
        self._version += 1
        self._by_underlying = None

    # ---- what a decision asks --------------------------------------------------------------

    def problem(self, underlying: str, accounts: set[str], now_ms: int) -> str | None:
        """Why trading `underlying` must wait for its feeds, or None. `accounts`: the accounts
        it depends on (where it is hedged and where its lines are held)."""
        cached = self._cache.get(underlying)
        if cached is not None and cached[0] == self._version and now_ms < cached[1]:
            return None
        answer, valid_until = self._scan(underlying, accounts, now_ms)
        if answer is None:
            self._cache[underlying] = (self._version, valid_until)
        else:
            self._cache.pop(underlying, None)
        return answer

    def quiet_until(self, underlying: str) -> int:
        """Until when (clock ms) the last answer of None for `underlying` holds, or 0."""
        cached = self._cache.get(underlying)
        return cached[1] if cached is not None and cached[0] == self._version else 0

    def _scan(self, underlying: str, accounts: set[str], now_ms: int) -> tuple[str | None, int]:
        if self._by_underlying is None:
            index: dict[str, list[tuple[FeedKey, FeedState]]] = {}
            for key, feed in self.feeds.items():
                for u in self._underlying_of(key):
                    index.setdefault(u, []).append((key, feed))
            self._by_underlying = index
        eng = self._cfg()
        valid_until = _NEVER
        for (account, stream), feed in self._by_underlying.get(underlying, ()):
            if account not in accounts:
                continue
            kind = stream.partition(":")[0]
            if feed.error is not None and kind != "ticker":
                return f"feed_down:{account}:{stream}", 0
            stale_kind = STALE_KINDS.get(kind)
            if stale_kind is not None:
                deadline = max(feed.last_ok_ms, feed.since_ms) + int(
                    stale_limit_s(eng, stale_kind) * 1000
                )
                if now_ms > deadline:
                    return f"stale:{account}:{stream}", 0
                valid_until = min(valid_until, deadline + 1)
        for account in sorted(accounts):
            holds = self._holds.get(account, {})
            for what in sorted(holds, key=lambda w: _HOLD_ORDER.get(w, len(_HOLD_ORDER))):
                reason, from_ms = holds[what]
                if now_ms >= from_ms:
                    return reason, 0
                valid_until = min(valid_until, from_ms)
        return None, valid_until
