"""The SQLite state store: one file, WAL mode, schema migrated on open.

Each component (seen items, hits, spool, outbox, source runs) keeps its
tables and its migrations in its own module under ``leaksentry.store``; the
``schema_version`` table records how far each component has been migrated,
so components evolve independently. Connections are per thread, so the
daemon's worker threads never share one.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

from leaksentry.errors import StoreError

#: (component, migrations) in the order they are applied. Each migration is
#: one SQL script; its 1-based position is its version. Never edit a shipped
#: migration: append a new one.
Migrations = Sequence[tuple[str, Sequence[str]]]

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
        self._migrate()

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
            raise StoreError(f"{self.path}: cannot open state store: {exc}") from None
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
            raise StoreError(f"{self.path}: cannot migrate state store: {exc}") from None

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
