"""What a state store failure means for the caller, for either engine: an older store
without a table, a failed write (worth keeping the data for later), and the one-line
message a user sees, naming the file or server."""

from __future__ import annotations

import errno
import sqlite3
from pathlib import Path

from leaksentry.errors import StoreError
from leaksentry.store.engine import pg_error


def missing_table(exc: BaseException) -> bool:
    """An older state store without a component's tables (not damage)."""
    if pg_error(exc):
        return getattr(exc, "sqlstate", None) == "42P01"  # undefined_table
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)


def storage_error(exc: BaseException) -> bool:
    """A failure to write state: any database error (either engine; a PostgreSQL server
    that cannot be reached too), or a full disk / quota / file-size limit while writing
    a file."""
    if isinstance(exc, sqlite3.DatabaseError) or pg_error(exc):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


def unreachable(exc: BaseException) -> bool:
    """The store cannot be used right now (a PostgreSQL server down or unreachable, a
    full disk, a damaged file): what was to be written must wait or fail, not vanish."""
    return isinstance(exc, StoreError) or storage_error(exc)


def store_failure(path: Path | str | None, exc: BaseException,
                  what: str = "state store error") -> StoreError:
    """One line for a database error: damaged file, full disk, or anything else SQLite
    says; names the file."""
    msg = " ".join(str(exc).split()) or type(exc).__name__
    where = str(path) if path is not None else "state store"
    if "disk is full" in msg or "No space left" in msg or "too large" in msg.lower() \
            or "Disk quota" in msg:
        return StoreError(f"{where}: disk full, nothing was written ({msg})")
    if "not a database" in msg or "malformed" in msg or "corrupt" in msg:
        return StoreError(f"{where}: state store is damaged ({msg}); restore it from a"
                          " backup or move it away to start a fresh one")
    return StoreError(f"{where}: {what}: {msg}")
