"""The SQLite state store: one file, WAL mode, schema migrated on open.

Each component (seen items, hits, spool, outbox, source runs) keeps its
tables and its migrations in its own module under ``leaksentry.store``; the
``schema_version`` table records how far each component has been migrated,
so components evolve independently. Connections are per thread, so the
daemon's worker threads never share one.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from leaksentry.errors import StoreError
from leaksentry.paths import private_file

#: the state files this process opened, newest last (a database error raised deep in a
#: command is reported against the file it most likely came from)
_OPENED: list[Path] = []


def last_opened() -> Path | None:
    """The state file this process opened last, if any."""
    return _OPENED[-1] if _OPENED else None


def missing_table(exc: BaseException) -> bool:
    """An older state file without a component's tables (not damage)."""
    return isinstance(exc, sqlite3.OperationalError) and "no such table" in str(exc)


def storage_error(exc: BaseException) -> bool:
    """A failure to write state: any SQLite error, or a full disk / quota / file-size
    limit while writing a file."""
    if isinstance(exc, sqlite3.DatabaseError):
        return True
    return isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)


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

#: (component, migrations) in the order they are applied. Each migration is
#: one SQL script; its 1-based position is its version. Never edit a shipped
#: migration: append a new one.
Migrations = Sequence[tuple[str, Sequence[str]]]

#: disk kept free next to the store for recording a run after the disk filled up
RESERVE_BYTES = 256 * 1024

#: how long a statement waits for another process's lock before "database is locked"
_BUSY_MS = 30_000


def _registered() -> Migrations:
    from leaksentry.store import evidence, hits, outbox, runs, seen, spool

    return [(m.COMPONENT, m.MIGRATIONS) for m in (hits, seen, spool, outbox, runs, evidence)]


class Store:
    """The state file. ``Store(path)`` opens (creating and migrating) it."""

    def __init__(self, path: Path | str, migrations: Migrations | None = None) -> None:
        self.path = Path(path)
        self._local = threading.local()
        self._migrations = migrations if migrations is not None else _registered()
        if str(self.path) != ":memory:":
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
            except OSError as exc:
                raise StoreError(
                    f"{self.path}: cannot create state directory: {exc.strerror}"
                ) from None
            try:
                private_file(self.path)  # 0600, and so its WAL and SHM files
            except OSError as exc:
                raise store_failure(self.path, exc, "cannot create state store") from None
        _OPENED.append(self.path)
        self._migrate()
        self._keep_reserve()

    # -- space for the last word on a full disk ---------------------------------
    @property
    def reserve_path(self) -> Path:
        return self.path.with_name(self.path.name + "-reserve")

    def _keep_reserve(self) -> None:
        """Keep RESERVE_BYTES of disk next to the store (best effort): on a full disk,
        :meth:`release_reserve` frees them so a crawl can still record its run."""
        if str(self.path) == ":memory:" or self.reserve_path.exists():
            return
        try:
            fd = os.open(self.reserve_path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError:
            return
        try:
            os.write(fd, b"\0" * RESERVE_BYTES)
        except OSError:  # no space even for that: try again on the next open
            os.close(fd)
            with contextlib.suppress(OSError):
                self.reserve_path.unlink()
            return
        os.close(fd)

    def release_reserve(self) -> bool:
        """Free the reserved space (the disk is full); True when there was some."""
        try:
            self.reserve_path.unlink()
        except OSError:
            return False
        return True

    # -- connections -------------------------------------------------------
    def _connect(self) -> sqlite3.Connection:
        try:
            conn = sqlite3.connect(self.path, timeout=30, isolation_level=None,
                                   check_same_thread=False)
            conn.row_factory = sqlite3.Row
            _wal(conn)
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        except sqlite3.DatabaseError as exc:
            raise store_failure(self.path, exc, "cannot open state store") from None
        return conn

    @property
    def conn(self) -> sqlite3.Connection:
        """This thread's connection (autocommit; use :meth:`transaction` to group writes)."""
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``; rolled back on any exception."""
        conn = self.conn
        if conn.in_transaction:  # nested: join the outer transaction
            yield conn
            return
        _begin_immediate(conn)
        try:
            yield conn
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        else:
            conn.execute("COMMIT")

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    # -- schema ------------------------------------------------------------
    def _migrate(self) -> None:
        try:
            with self.transaction() as tx:
                tx.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " component TEXT PRIMARY KEY, version INTEGER NOT NULL)"
                )
                for component, scripts in self._migrations:
                    row = tx.execute(
                        "SELECT version FROM schema_version WHERE component = ?", (component,)
                    ).fetchone()
                    current = row[0] if row else 0
                    if current > len(scripts):
                        raise StoreError(
                            f"{self.path}: schema of {component!r} is version {current}, newer"
                            f" than this leaksentry knows ({len(scripts)}); upgrade leaksentry"
                        )
                    for version in range(current + 1, len(scripts) + 1):
                        for statement in _statements(scripts[version - 1]):
                            tx.execute(statement)
                    if len(scripts) > current:
                        tx.execute(
                            "INSERT INTO schema_version(component, version) VALUES (?, ?)"
                            " ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                            (component, len(scripts)),
                        )
        except sqlite3.DatabaseError as exc:
            raise store_failure(self.path, exc, "cannot migrate state store") from None

    def schema_versions(self) -> dict[str, int]:
        rows = self.conn.execute("SELECT component, version FROM schema_version")
        return {r[0]: r[1] for r in rows}


def _begin_immediate(conn: sqlite3.Connection) -> None:
    """``BEGIN IMMEDIATE``, waiting for another process's write transaction in short
    steps. SQLite's own busy handler sleeps 1, 2, 5, 10 ... ms: two crawl processes
    committing a few hundred small transactions a second each would spend much of
    their time asleep after locks held for a fraction of a millisecond."""
    conn.execute("PRAGMA busy_timeout=0")
    try:
        _until_unlocked(conn, "BEGIN IMMEDIATE", first=0.0001, cap=0.002)
    finally:
        conn.execute(f"PRAGMA busy_timeout={_BUSY_MS}")


def _wal(conn: sqlite3.Connection) -> None:
    """Switch to WAL. On a new file that other processes open at the same moment (the
    shards of one crawl) SQLite can answer "database is locked" at once, without its
    busy handler. A file already in WAL needs no lock."""
    _until_unlocked(conn, "PRAGMA journal_mode=WAL", first=0.005, cap=0.2)


def _until_unlocked(conn: sqlite3.Connection, statement: str, *, first: float, cap: float,
                    wait: float = 30.0) -> None:
    """Execute ``statement``, retrying while SQLite answers "database is locked", with
    sleeps from ``first`` doubling up to ``cap``, for at most ``wait`` seconds."""
    deadline = time.monotonic() + wait
    delay = first
    while True:
        try:
            conn.execute(statement)
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(delay)
        delay = min(delay * 2, cap)


def _statements(script: str) -> list[str]:
    """Split a migration script into statements (execute() runs one at a time, and
    executescript() would commit the migration's transaction)."""
    out, buf = [], ""
    for piece in script.split(";"):
        buf += piece + ";"
        if sqlite3.complete_statement(buf):
            if buf.strip(" \t\n;"):
                out.append(buf.strip())
            buf = ""
    if buf.strip(" \t\n;"):
        out.append(buf.strip())
    return out
