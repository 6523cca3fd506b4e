"""Tell the daemon an alert is waiting, so it delivers now instead of at its next
outbox run.

The daemon gives each crawl subprocess the write end of a pipe (its number in
``$LEAKSENTRY_ALERT_WAKE_FD``); after a hit is committed the crawl writes one
byte. The write never blocks and never fails the crawl: a full pipe already
holds a wake-up, a closed one means no daemon is listening (the outbox
interval is the backstop either way). Outside the daemon the variable is
unset and :func:`wake` does nothing.
"""

from __future__ import annotations

import contextlib
import os
import stat

ENV = "LEAKSENTRY_ALERT_WAKE_FD"


def wake_fd() -> int | None:
    """The inherited pipe's descriptor, when there is one (and it is a pipe)."""
    value = os.environ.get(ENV)
    if not value or not value.isdigit():
        return None
    fd = int(value)
    try:
        if not stat.S_ISFIFO(os.fstat(fd).st_mode):
            return None
    except OSError:
        return None
    return fd


def wake(fd: int | None = None) -> None:
    """One byte down the pipe; never blocks, never raises."""
    fd = wake_fd() if fd is None else fd
    if fd is None:
        return
    with contextlib.suppress(OSError):  # full (BlockingIOError), closed (BrokenPipeError)
        os.write(fd, b"!")
