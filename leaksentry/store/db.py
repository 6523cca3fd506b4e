"""The state store: a SQLite file (WAL mode, schema migrated on open), or a PostgreSQL
database shared by the hosts of a cluster (:mod:`leaksentry.store.engine`: one code path
for both).

Each component (seen items, hits, spool, outbox, source runs) keeps its
tables and its migrations in its own module under ``leaksentry.store``; the
``schema_version`` table records how far each component has been migrated,
so components evolve independently. Connections are per thread, so the
daemon's worker threads never share one.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from leaksentry.errors import StoreError
from leaksentry.paths import default_state_dir, private_file
from leaksentry.store.engine import (
    POSTGRESQL,
    SQLITE,
    Connection,
    connect_postgres,
    connect_sqlite,
    db_errors,
    is_postgres_url,
    pg_ddl,
    pg_error,
    split_statements,
)
from leaksentry.store.failures import missing_table, store_failure

if TYPE_CHECKING:  # the config models load only when a command reads a config
    from leaksentry.config import StateConfig

#: the state files this process opened, newest last (a database error raised deep in a
#: command is reported against the file it most likely came from)
_OPENED: list[Path | str] = []


def last_opened() -> Path | str | None:
    """The state file this process opened last, if any."""
    return _OPENED[-1] if _OPENED else None


#: (component, migrations) in the order they are applied. Each migration is
#: one SQL script; its 1-based position is its version. Never edit a shipped
#: migration: append a new one.
Migrations = Sequence[tuple[str, Sequence[str]]]

#: disk kept free next to the store for recording a run after the disk filled up
RESERVE_BYTES = 256 * 1024

#: how long a statement waits for another process's lock before "database is locked"
_BUSY_MS = 30_000


def _registered() -> Migrations:
    # the components are imported when a store is opened: `leaksentry --help`, whose command
    # modules import Store, loads neither the config models (runs) nor the redaction
    # policy (seen) (start-up, tests/leaksentry/cli/test_startup.py, bench/bench_cli.py)
    from leaksentry.store import evidence, hits, outbox, runs, seen, spool

    return [(m.COMPONENT, m.MIGRATIONS) for m in (hits, seen, spool, outbox, runs, evidence)]


class Store:
    """The state store. ``Store(path)`` opens (creating and migrating) a SQLite file;
    ``Store(settings.state)`` opens what the config names: that file, or the PostgreSQL
    database of ``[state] url`` (password from the environment variable named by
    ``password_env``).

    A SQLite file is migrated on open (one host, one version). A PostgreSQL database is
    shared by hosts that may run different versions for a while, so it is migrated only
    by ``leaksentry db upgrade`` (``upgrade=True``); opening one whose schema is behind
    raises a one-line :class:`StoreError` saying so. ``readonly=True`` (status, metrics)
    never writes nor migrates.
    """

    def __init__(self, target: Path | str | StateConfig, migrations: Migrations | None = None,
                 *, readonly: bool = False, upgrade: bool = False) -> None:
        self._local = threading.local()
        self._migrations = migrations if migrations is not None else _registered()
        self.readonly = readonly
        self._schema_ok = True  # a PostgreSQL store: checked on first connection
        self._password: str | None = None
        key_dir: Path | None = None
        if not isinstance(target, (Path, str)):  # a StateConfig
            key_dir = target.dir
            if target.url:
                self._password = target.password()
                target = target.url
            else:
                target = target.db
        self.engine = POSTGRESQL if is_postgres_url(target) else SQLITE
        #: the SQLite file, or the PostgreSQL URL (it never holds a password)
        self.path: Path | str
        if self.engine == POSTGRESQL:
            self.path = str(target)
            if self._password is None:
                self._password = os.environ.get("LEAKSENTRY_STATE_PASSWORD") or None
            # seen.key and the journal of unrecorded runs stay on this host
            self._key_dir = key_dir or default_state_dir()
            _OPENED.append(self.path)
            # checked on first connection (a store is opened before a server that is
            # down comes back; using it then fails like any unreachable store)
            self._schema_ok = readonly or upgrade
            if upgrade:
                self._migrate()
            return
        self.path = Path(target)
        self._key_dir = self.path.parent
        if readonly:
            _OPENED.append(self.path)
            return
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

    @property
    def state_dir(self) -> Path:
        """This host's state directory (keys, the journal of unrecorded runs)."""
        return self._key_dir

    @property
    def where(self) -> str:
        """The store, for messages."""
        return str(self.path)

    # -- space for the last word on a full disk ---------------------------------
    @property
    def reserve_path(self) -> Path:
        return Path(self.path).with_name(Path(self.path).name + "-reserve")

    def _keep_reserve(self) -> None:
        """Keep RESERVE_BYTES of disk next to the store (best effort): on a full disk,
        :meth:`release_reserve` frees them so a crawl can still record its run."""
        if self.engine != SQLITE or str(self.path) == ":memory:" \
                or self.reserve_path.exists():
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
        if self.engine != SQLITE:
            return False
        try:
            self.reserve_path.unlink()
        except OSError:
            return False
        return True

    # -- connections -------------------------------------------------------
    def _connect(self) -> Connection:
        if self.engine == POSTGRESQL:
            try:
                pg = connect_postgres(str(self.path), password=self._password,
                                      key_dir=self._key_dir, readonly=self.readonly)
            except Exception as exc:
                if not pg_error(exc):
                    raise
                raise store_failure(self.path, exc, "cannot connect to state store") from None
            if not self._schema_ok:
                try:
                    self._refuse_behind(pg)
                except BaseException:
                    pg.close()
                    raise
                self._schema_ok = True
            return pg
        try:
            conn = connect_sqlite(self.path, readonly=self.readonly,
                                  timeout=5.0 if self.readonly else 30.0)
            if not self.readonly:
                _wal(conn.raw)
                conn.raw.execute("PRAGMA synchronous=NORMAL")
                conn.raw.execute("PRAGMA foreign_keys=ON")
                conn.raw.execute(f"PRAGMA busy_timeout={_BUSY_MS}")
        except sqlite3.DatabaseError as exc:
            raise store_failure(self.path, exc, "cannot open state store") from None
        return conn

    @property
    def conn(self) -> Connection:
        """This thread's connection (autocommit; use :meth:`transaction` to group writes).
        A PostgreSQL connection the server dropped is replaced on next use."""
        conn: Connection | None = getattr(self._local, "conn", None)
        if conn is not None and conn.broken:
            with contextlib.suppress(Exception):
                conn.close()
            conn = None
        if conn is None:
            conn = self._local.conn = self._connect()
        return conn

    @contextmanager
    def transaction(self, *, serial: bool = True) -> Iterator[Connection]:
        """A write transaction, one writer at a time (SQLite's ``BEGIN IMMEDIATE``; on
        PostgreSQL ``BEGIN`` and the store's advisory lock); rolled back on any
        exception. ``serial=False`` (PostgreSQL): without the lock, for transactions
        made of upserts only, or that call ``lock_writes()`` first thing."""
        conn = self.conn
        if conn.in_transaction:  # nested: join the outer transaction
            yield conn
            return
        if conn.engine == SQLITE:
            _begin_immediate(conn.raw)
        else:
            conn.begin_write(serial)
        try:
            yield conn
        except BaseException:
            if not conn.broken:
                conn.rollback()
            raise
        else:
            conn.commit()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            with contextlib.suppress(Exception):
                conn.close()
            self._local.conn = None

    def tables(self) -> set[str]:
        return self.conn.tables()

    # -- schema ------------------------------------------------------------
    def _migrate(self) -> None:
        try:
            with self.transaction() as tx:
                tx.execute(self._ddl(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    " component TEXT PRIMARY KEY, version INTEGER NOT NULL)") or "")
                for component, scripts in self._migrations:
                    row = tx.execute(
                        "SELECT version FROM schema_version WHERE component = ?", (component,)
                    ).fetchone()
                    current = row[0] if row else 0
                    if current > len(scripts):
                        raise self._newer(component, current, len(scripts))
                    for version in range(current + 1, len(scripts) + 1):
                        for statement in split_statements(scripts[version - 1]):
                            ddl = self._ddl(statement)
                            if ddl is not None:
                                tx.execute(ddl)
                    if len(scripts) > current:
                        tx.execute(
                            "INSERT INTO schema_version(component, version) VALUES (?, ?)"
                            " ON CONFLICT(component) DO UPDATE SET version = excluded.version",
                            (component, len(scripts)),
                        )
        except db_errors() as exc:
            raise store_failure(self.path, exc, "cannot migrate state store") from None

    def _ddl(self, statement: str) -> str | None:
        return statement if self.engine == SQLITE else pg_ddl(statement)

    def _newer(self, component: str, current: int, known: int) -> StoreError:
        return StoreError(f"{self.path}: schema of {component!r} is version {current}, newer"
                          f" than this leaksentry knows ({known}); upgrade leaksentry")

    def pending_migrations(self, conn: Connection | None = None) -> dict[str, tuple[int, int]]:
        """component -> (its version in the store, the version this leaksentry knows),
        for the components that are behind."""
        try:
            versions = self.schema_versions(conn)
        except db_errors() as exc:
            if not missing_table(exc):
                raise store_failure(self.path, exc, "cannot read the schema version") from None
            versions = {}
        out = {}
        for component, scripts in self._migrations:
            current = versions.get(component, 0)
            if current > len(scripts):
                raise self._newer(component, current, len(scripts))
            if current < len(scripts):
                out[component] = (current, len(scripts))
        return out

    def check_schema(self) -> None:
        """Refuse a store whose schema is behind this leaksentry's (PostgreSQL: only
        ``leaksentry db upgrade`` migrates it). A PostgreSQL store checks itself on its
        first connection; the daemon and the workers call this at start."""
        self._refuse_behind(self.conn)

    def _refuse_behind(self, conn: Connection) -> None:
        behind = self.pending_migrations(conn)
        if behind:
            what = ", ".join(f"{c} {v}<{n}" for c, (v, n) in behind.items())
            raise StoreError(f"{self.path}: the state schema is behind this leaksentry"
                             f" ({what}); run `leaksentry db upgrade`")

    def upgrade(self) -> dict[str, tuple[int, int]]:
        """Apply the pending migrations; returns what was applied."""
        behind = self.pending_migrations()
        if behind:
            self._migrate()
        return behind

    def schema_versions(self, conn: Connection | None = None) -> dict[str, int]:
        rows = (conn or self.conn).execute("SELECT component, version FROM schema_version")
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
