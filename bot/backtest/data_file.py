"""A recorded-market file's header and records, whatever its container: CSV (UTF-8, with or
without a byte-order mark, LF or CRLF), gzip-compressed CSV (tardis.dev ships `.csv.gz`) or
Parquet. The content decides, not the name: gzip and Parquet are told by their magic bytes.

Every way a file can fail to read (not UTF-8, a broken gzip stream, a malformed CSV line, an
unreadable file) is a DataError naming the file and, where it applies, the line; never a
traceback (README "Replaying recorded data")."""

from __future__ import annotations

import csv
import gzip
import zlib
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import TextIO

GZIP_MAGIC = b"\x1f\x8b"
PARQUET_MAGIC = b"PAR1"


class DataError(ValueError):
    """A bad data file or row: `file:line: column 'x': 'value' rule`."""


Records = Iterable[Sequence[object]]


def read_table(path: Path) -> tuple[list[str], Records]:
    """The header (names stripped, lower-cased) and the records after it, line 2 on (read as
    they are iterated, their errors DataErrors too)."""
    try:
        with path.open("rb") as f:
            magic = f.read(4)
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e.strerror or e})") from None
    if magic == PARQUET_MAGIC or path.suffix.lower() in (".parquet", ".pq"):
        header, rows = _parquet(path)
        return _names(path, header), rows
    records = _csv(path, magic.startswith(GZIP_MAGIC))
    return _names(path, next(records)), records


def _csv(path: Path, gz: bool) -> Iterator[list[str]]:
    """The header row, then the records: one generator, so the file stays open while they are
    read and every read error is caught here."""
    what = "gzip-compressed CSV" if gz else "CSV"
    reader = None
    try:
        with _open(path, gz) as text:
            # utf-8-sig: a byte-order mark (Excel's UTF-8 CSV) is not part of a column's name
            reader = csv.reader(text)
            try:
                yield next(reader)
            except StopIteration:
                raise DataError(f"{path}: empty file, no header") from None
            yield from reader
    except UnicodeDecodeError:
        raise DataError(_not_utf8(path, gz)) from None
    except csv.Error as e:  # line_num: the lines read, the bad one's last
        line = reader.line_num if reader is not None else 1
        raise DataError(f"{path}:{line}: not valid {what} ({e})") from None
    except (OSError, EOFError, zlib.error) as e:
        where = f"{path}:{reader.line_num + 1}" if reader is not None else str(path)
        raise DataError(f"{where}: not a readable {what} file ({e})") from None


def _open(path: Path, gz: bool) -> TextIO:
    if gz:
        return gzip.open(path, "rt", encoding="utf-8-sig", newline="")
    return path.open(encoding="utf-8-sig", newline="")


def _not_utf8(path: Path, gz: bool) -> str:
    """Where the first byte that is not UTF-8 is: decoding runs in blocks, so look again line
    by line (only once the file is known bad)."""
    try:
        with gzip.open(path, "rb") if gz else path.open("rb") as f:
            for n, raw in enumerate(f, start=1):
                try:
                    raw.decode("utf-8")
                except UnicodeDecodeError as e:
                    return (
                        f"{path}:{n}: byte {raw[e.start]:#04x} at character {e.start + 1} is "
                        "not UTF-8 (a data file is UTF-8 text, CSV or gzip-compressed CSV, or "
                        "Parquet)"
                    )
    except (OSError, EOFError, zlib.error) as e:  # a gzip stream broken after the bad byte
        return f"{path}: not UTF-8 text, and not readable to the end ({e})"
    return f"{path}: not UTF-8 text"


def _names(path: Path, header: Sequence[object]) -> list[str]:
    names = [str(h).strip().lower() for h in header]
    if not any(names):
        raise DataError(f"{path}:1: blank, the first line must be the header")
    seen: set[str] = set()
    for name in names:
        if name and name in seen:
            raise DataError(
                f"{path}:1: column '{name}' appears twice in the header; which one holds the "
                "data is ambiguous"
            )
        seen.add(name)
    return names


def _parquet(path: Path) -> tuple[list[str], list[list[object]]]:
    try:
        import pyarrow.parquet as pq
    except ImportError:
        raise DataError(f"{path}: reading Parquet needs pyarrow (the lab extra)") from None
    try:
        table = pq.read_table(path)
        header = [str(c) for c in table.column_names]
        cols = [table.column(c).to_pylist() for c in header]
    except Exception as e:  # pyarrow raises many types for a bad file
        raise DataError(f"{path}: not a readable Parquet file ({e})") from None
    return header, [list(r) for r in zip(*cols, strict=True)]
