"""Whether a process is still there: the one signal-0 probe the daemon's status, its crawl
runner and the evidence vault's sweep share."""

from __future__ import annotations

import os


def alive(pid: int, *, group: bool = False) -> bool:
    """True while process ``pid`` (with ``group``: any process of group ``pid``) exists.
    A process we may not signal still exists, so it counts as alive."""
    try:
        (os.killpg if group else os.kill)(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
