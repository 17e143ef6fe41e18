"""systemd readiness and watchdog (sd_notify) without libsystemd: one datagram per message.

`Type=notify` units get $NOTIFY_SOCKET, a unix datagram socket path (a leading '@' names an
abstract socket); `WatchdogSec=` adds $WATCHDOG_USEC (and $WATCHDOG_PID, the process it is meant
for). Outside systemd the variables are unset and every call is a no-op.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Mapping

import structlog

from bot.clock import real_sleep

log = structlog.get_logger("hedgebot.systemd")


class Notifier:
    def __init__(self, address: str | None, watchdog_usec: int | None = None) -> None:
        self.address = address
        self.watchdog_usec = watchdog_usec

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Notifier:
        env = os.environ if env is None else env
        address = env.get("NOTIFY_SOCKET") or None
        usec: int | None = None
        raw = env.get("WATCHDOG_USEC")
        pid = env.get("WATCHDOG_PID")
        if raw and (not pid or pid == str(os.getpid())):
            try:
                usec = int(raw)
            except ValueError:
                log.warning("systemd.bad_watchdog_usec", value=raw, rule="integer microseconds")
            else:
                usec = usec if usec > 0 else None
        return cls(address, usec)

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def watchdog_interval_s(self) -> float | None:
        """Half the watchdog timeout, as sd_watchdog_enabled(3) recommends."""
        return None if self.watchdog_usec is None else self.watchdog_usec / 2_000_000

    def send(self, message: str) -> bool:
        """True when the datagram went out. Never raises: systemd is told, not depended on."""
        if self.address is None:
            return False
        target = "\0" + self.address[1:] if self.address.startswith("@") else self.address
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as s:
                s.sendto(message.encode(), target)
        except OSError as e:
            log.warning("systemd.notify_failed", socket=self.address, error=repr(e))
            return False
        return True

    def ready(self, status: str = "hedging") -> bool:
        return self.send(f"READY=1\nSTATUS={status}")

    def stopping(self) -> bool:
        return self.send("STOPPING=1\nSTATUS=stopping: cancelling orders, flushing the journal")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")


async def watchdog_forever(notifier: Notifier) -> None:
    """Pets the watchdog from the event loop, so a stuck loop gets the daemon restarted."""
    interval = notifier.watchdog_interval_s()
    if not notifier.enabled or interval is None:
        return
    log.info("systemd.watchdog", interval_s=interval)
    while True:
        notifier.watchdog()
        await real_sleep(interval)
