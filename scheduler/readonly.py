"""Read-only SQLite connections for readers that must never write or migrate
(`leaksentry status`, the metrics collector), safe for any path."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from urllib.parse import quote


def connect_readonly(path: Path, timeout: float = 5.0) -> sqlite3.Connection:
    """``mode=ro`` through a URI, with the path percent-encoded (``?``/``#`` in paths)."""
    conn = sqlite3.connect(f"file:{quote(str(path.resolve()))}?mode=ro", uri=True,
                           timeout=timeout)
    conn.row_factory = sqlite3.Row
    return conn
