"""One cell of a recorded-market file as a number or a timestamp, or a CellError naming the
value and the rule (the reader adds `file:line: column 'x'`). Pure."""

from __future__ import annotations

import math
from datetime import UTC, datetime


class CellError(ValueError):
    """A bad cell: `'value' is not ...`."""


# The simulated exchange sizes its lot and tick from the price (bot/venues/sim/listing.py):
# within these both are > 0. A replayed underlying's price also stays within RANGE_MAX-fold over
# the file (beyond it the tick set at the start no longer fits the price); a move over
# JUMP_WARN-fold from one row to the next is reported (a flash crash, or a bad tick or unit
# change), not refused: real markets have made such moves.
PRICE_MIN, PRICE_MAX = 1e-6, 1e12
JUMP_WARN = 10.0
RANGE_MAX = 1e4


def number(text: str, rule: str) -> float:
    """A cell as a number under `rule` ("price", "iv", "volume"); NaN when empty."""
    if text == "" or text.lower() in ("nan", "null", "none"):
        return math.nan
    try:
        x = float(text)
    except ValueError:
        raise CellError(f"{text!r} is not a number") from None
    if rule == "price":
        if not (math.isfinite(x) and x > 0.0):
            raise CellError(f"{text!r} is not a finite price > 0")
    elif rule == "iv":
        if not 0.0 < x <= 5.0:
            raise CellError(f"{text!r} is not an IV in (0, 5]")
    elif not (math.isfinite(x) and x >= 0.0):
        raise CellError(f"{text!r} is not a finite volume >= 0")
    if rule == "price" and not PRICE_MIN <= x <= PRICE_MAX:
        raise CellError(
            f"{text!r} is outside [{PRICE_MIN:g}, {PRICE_MAX:g}], the prices the "
            "simulated exchange can list"
        )
    return x


# Plausible times: a timestamp outside them is a unit mistake (ms read as us, a row number),
# not a market that traded in 1970.
_EARLIEST_MS = 946_684_800_000  # 2000-01-01
_LATEST_MS = 4_102_444_800_000  # 2100-01-01


def timestamp(text: str, micro: bool) -> int:
    """`micro`: epoch microseconds only (tardis.dev); else s, ms, us or ns by size, or ISO 8601."""
    if text == "":
        raise CellError("empty")
    try:
        x = float(text)
    except ValueError:
        x = math.nan
    if math.isnan(x) and text.lower() != "nan":
        return _iso(text)
    if not math.isfinite(x) or x <= 0:
        raise CellError(f"{text!r} is not a positive epoch")
    if micro:
        if not 1e14 <= x < 1e17:
            raise CellError(
                f"{text!r} is not epoch microseconds (tardis.dev's unit; 16 digits for these years)"
            )
        ms = int(x // 1000)
    # Epoch unit by size: seconds until 5138 AD, then ms, us, ns.
    elif x < 1e11:
        ms = round(x * 1000)
    elif x < 1e14:
        ms = int(x)
    elif x < 1e17:
        ms = int(x // 1000)
    else:
        ms = int(x // 1_000_000)
    if not _EARLIEST_MS <= ms < _LATEST_MS:
        raise CellError(
            f"{text!r} is not between 2000 and 2100 as epoch s, ms, us or ns (a wrong unit?)"
        )
    return ms


def _iso(text: str) -> int:
    try:
        dt = datetime.fromisoformat(text)
    except ValueError:
        raise CellError(f"{text!r} is neither epoch nor ISO 8601") from None
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)  # naive times are UTC
    if not 2000 <= dt.year < 2100:
        raise CellError(f"{text!r} is not between 2000 and 2100")
    return int(dt.timestamp() * 1000)
