"""Names of the daemon's files in the state directory.

Apart from ``scheduler.daemon`` so that `leaksentry status`, which only reads them,
does not import APScheduler and SQLAlchemy (a third of a second of start-up).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leaksentry.config import Settings

JOBSTORE_FILE = "scheduler.db"
INFO_FILE = "daemon.json"


def jobstore_path(settings: Settings) -> Path:
    return settings.state.dir / JOBSTORE_FILE


def info_path(settings: Settings) -> Path:
    return settings.state.dir / INFO_FILE
