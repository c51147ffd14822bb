"""Tell systemd about the daemon's state over $NOTIFY_SOCKET (sd_notify by hand).

    notify("READY=1")                 # False, and nothing sent, outside systemd
    period = watchdog_period()        # seconds between WATCHDOG=1 pings, or None
    notify("WATCHDOG=1")

The protocol is one datagram of newline-separated KEY=VALUE lines sent to
the AF_UNIX socket named by NOTIFY_SOCKET; a leading '@' names a socket in
the abstract namespace. It is a few lines, so no extra dependency.
"""

from __future__ import annotations

import logging
import os
import socket
from collections.abc import Mapping

log = logging.getLogger(__name__)


def notify(message: str, environ: Mapping[str, str] | None = None) -> bool:
    """Send one notification such as "READY=1"; return whether it was sent."""
    environ = os.environ if environ is None else environ
    address = _address(environ.get("NOTIFY_SOCKET", ""))
    if address is None:
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(message.encode("utf-8"))
    except OSError as exc:
        # Losing a notification must never take the daemon down; systemd will
        # notice a missing READY or WATCHDOG by itself.
        log.warning("cannot notify systemd at %s: %s", environ.get("NOTIFY_SOCKET"), exc.strerror or exc)
        return False
    return True


def watchdog_period(environ: Mapping[str, str] | None = None, pid: int | None = None) -> float | None:
    """Return WatchdogSec in seconds when systemd watches this process, else None."""
    environ = os.environ if environ is None else environ
    usec = environ.get("WATCHDOG_USEC", "")
    watched_pid = environ.get("WATCHDOG_PID", "")
    # WATCHDOG_PID names the process the watchdog is meant for; a child that
    # inherited the environment must not ping on its parent's behalf.
    if watched_pid and watched_pid != str(os.getpid() if pid is None else pid):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1_000_000 if value > 0 else None


def _address(path: str) -> str | bytes | None:
    if not path:
        return None
    if path.startswith("@"):
        return b"\0" + path[1:].encode()
    if path.startswith("/"):
        return path
    # vsock (vsock:CID:PORT) is for VMs talking to their host; not ours to handle.
    log.warning("ignoring NOTIFY_SOCKET %r: not a unix socket path", path)
    return None
