"""One daemon per journal: an exclusive lock held for the daemon's life.

Two daemons on one journal would both recover the same in-flight intents and both hedge the same
book, so the second one must refuse to start. The lock is `flock` on `<journal>.lock` beside the
journal: the kernel drops it when the process dies, however it dies, so a crash never leaves a
stale lock behind (the file itself stays; it only holds the owner's pid for the error message).
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from bot.io.journal import JournalError


class JournalInUse(JournalError):
    """Another process holds the journal's lock."""

    def __init__(self, journal: Path, lock_file: Path, owner: str) -> None:
        self.journal = journal
        self.lock_file = lock_file
        self.owner = owner
        super().__init__(
            f"journal.path {str(journal)!r} is in use by another hedgebot daemon ({owner}); "
            f"one daemon per journal: stop the other one, or give this one its own journal.path "
            f"(lock: {lock_file})"
        )


def lock_path(journal: Path) -> Path:
    return journal.with_name(journal.name + ".lock")


class JournalLock:
    """Held from `acquire` until `release` or process exit."""

    def __init__(self, journal: Path, fd: int) -> None:
        self.journal = journal
        self._fd: int | None = fd

    @classmethod
    def acquire(cls, journal: Path, bot_id: str) -> JournalLock:
        path = lock_path(journal)
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            owner = _read_owner(fd)
            os.close(fd)
            raise JournalInUse(journal, path, owner) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid={os.getpid()} bot_id={bot_id}\n".encode(), 0)
        return cls(journal, fd)

    def __del__(self) -> None:
        # A daemon that fails between acquire and its `finally` (e.g. a venue refusing the
        # config) must not keep the journal locked for the rest of a longer-lived process.
        self.release()

    @property
    def held(self) -> bool:
        return self._fd is not None

    def release(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        # Closing the descriptor releases the flock; the file is left in place on purpose:
        # unlinking it would let a third process lock a fresh inode while a second one waits.
        os.close(fd)


def _read_owner(fd: int) -> str:
    try:
        text = os.pread(fd, 200, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text or "owner unknown"
