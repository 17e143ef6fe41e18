"""Position streams: a hint, never the truth, and watched for silence.

Position streams are known to lag and to report 0 spuriously: a streamed position that
disagrees with ours only asks for a REST reconciliation, which wins. A position stream is
checked at the one moment it must speak: after one of our fills changed a position, the venue
pushes that position. A fill (booked by any path: stream, REST lookup, recovery) with no position
message within engine.position_confirm_s declares the stream silent: the underlyings depending on
the account halt, REST reconciles at once, and the venue's sockets are reset (again every few
confirm periods) in case the session is stuck. The halt lifts when the stream speaks again and a
REST reconcile has passed after that.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence

from bot.core.book import LineKey
from bot.core.orders import PositionReport
from bot.hedger.hedger import Hedger
from bot.venues.base import Venue

# A position message up to this long before the fill message still confirms the fill.
POSITION_RACE_MS = 2_000


class PositionWatch:
    def __init__(
        self,
        venues: Mapping[str, Venue],
        hedger: Hedger,
        resubscribed_ms: int,
        reconcile_soon: Callable[[], None],
    ) -> None:
        self.venues = venues
        self.hedger = hedger
        self._resubscribed_ms = resubscribed_ms
        self._reconcile_soon = reconcile_soon
        self._awaiting: dict[str, int] = {}  # account -> ms of the first unconfirmed fill
        self._fill_marks: dict[LineKey, int] = {}  # last fill time seen per line
        self._silent_reset_ms: dict[str, int] = {}  # when each silent stream was last reset

    def on_positions(self, account: str, reports: Sequence[PositionReport]) -> None:
        h = self.hedger
        self._heard(account)
        for r in reports:
            if not math.isfinite(r.qty):
                h.emit("alert", "position.bad_data", account=account, symbol=r.symbol, qty=r.qty)
                self._reconcile_soon()
                continue
            ours = h.ledger.positions.get((account, r.symbol), 0.0)
            if abs(ours - r.qty) > 1e-9:
                h.emit(
                    "alert",
                    "position.stream_disagrees",
                    account=account,
                    symbol=r.symbol,
                    stream=r.qty,
                    ours=ours,
                )
                self._reconcile_soon()

    def unreconciled(self, account: str) -> None:
        """`account` trades again only after a REST reconcile passed (reconciled)."""
        self.hedger.feeds.hold(account, "reconciling", f"reconciling:{account}")

    def reconciled(self, account: str) -> None:
        self.hedger.feeds.hold(account, "reconciling", None)

    def _heard(self, account: str) -> None:
        self._awaiting.pop(account, None)
        self.hedger.feeds.hold(account, "silent", None)
        if self._silent_reset_ms.pop(account, None) is not None:
            self.hedger.emit("state", "stream.recovered", account=account, stream="positions")
            # The stream missed what happened while silent: trade again only after REST.
            self.unreconciled(account)
            self._reconcile_soon()

    def _note_fill(self, account: str, fill_ts_ms: int) -> None:
        feed = self.hedger.feeds.feeds.get((account, "positions"))
        if feed is None or feed.watching_since_ms is None:
            return  # no position stream here (polled), or it is reconnecting
        if fill_ts_ms < feed.watching_since_ms + self._resubscribed_ms:
            # The fill may predate the subscription (ccxt connects inside the first watch,
            # and a message with no watch waiting is not kept): nothing to expect from it.
            return
        if feed.last_ok_ms >= fill_ts_ms - POSITION_RACE_MS:
            return  # the position message already came (it may beat the fill message)
        since = self._awaiting.get(account)
        since = fill_ts_ms if since is None else min(since, fill_ts_ms)
        self._awaiting[account] = since
        # Silent from the confirm deadline on, unless the stream speaks before.
        confirm_ms = int(self.hedger.settings.engine.position_confirm_s * 1000)
        self.hedger.feeds.hold(
            account, "silent", f"silent:{account}:positions", from_ms=since + confirm_ms + 1
        )

    def check(self, now: int) -> None:
        """Every heartbeat: notes new fills, declares silent position streams."""
        h = self.hedger
        for key, ts in list(h.ledger.last_fill_ms.items()):
            if self._fill_marks.get(key) != ts:
                self._fill_marks[key] = ts
                self._note_fill(key[0], ts)
        confirm_ms = h.settings.engine.position_confirm_s * 1000
        for account, since in list(self._awaiting.items()):
            if now - since <= confirm_ms:
                continue
            last = self._silent_reset_ms.get(account)
            if last is not None and now - last < 3 * confirm_ms:
                continue
            self._silent_reset_ms[account] = now
            h.emit(
                "alert",
                "stream.silent",
                account=account,
                stream="positions",
                waiting_since_ms=since,
                first=last is None,
            )
            self._reconcile_soon()
            reset = getattr(self.venues[account], "reset_streams", None)
            if callable(reset):
                reset()
            h.mark_all_dirty()
