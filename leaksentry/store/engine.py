"""One connection API over SQLite and PostgreSQL: the store's thin dialect layer.

The queries of every store component are written once, in SQL both engines accept
(``INSERT ... ON CONFLICT``, ``RETURNING``, ``CASE`` rather than SQLite's two-argument
``min``/``max``, times computed in Python). What still differs is translated here, once:

- placeholders: ``?`` becomes psycopg's ``%s`` (and a literal ``%`` is doubled);
- DDL type words (:func:`pg_ddl`): ``INTEGER PRIMARY KEY`` becomes an identity
  (``BIGSERIAL``), ``INTEGER`` ``BIGINT``, ``REAL`` ``DOUBLE PRECISION``, ``BLOB``
  ``BYTEA``, and ``TEXT`` compares byte-wise (``COLLATE "C"``) as in SQLite, since times
  are stored as ISO text and compared as text;
- ``BEGIN IMMEDIATE``: SQLite lets one writer at a time into a write transaction, and
  the components rely on it (a run reads the source's health before updating it, the
  alert planner counts a channel's messages and finds a thread's first alert before
  inserting, an outbox claim is a read-modify-write). On PostgreSQL a write transaction
  takes one advisory transaction lock first, which gives the same order. The one hot
  path that needs no order, a crawl recording a document that is not a hit (upserts
  only), opts out (``transaction(serial=False)``): PostgreSQL writers then commit in
  parallel; a hit takes the lock before its first statement (``lock_writes``).

psycopg is imported only when a PostgreSQL store is opened (start-up time of the
commands that never use it).
"""

from __future__ import annotations

import re
import sqlite3
import sys
from collections.abc import Iterable, Iterator, Mapping, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any, Protocol

Params = Sequence[Any] | Mapping[str, Any]

#: the advisory lock every PostgreSQL write transaction takes (SQLite's one writer)
WRITE_LOCK = 0x6C6B736E  # "lksn"

SQLITE, POSTGRESQL = "sqlite", "postgresql"


class Row(Protocol):
    """A result row: addressable by column name and by index (``sqlite3.Row`` or
    :class:`PgRow`)."""

    def __getitem__(self, key: int | str, /) -> Any: ...
    def __iter__(self) -> Iterator[Any]: ...
    def keys(self) -> list[str]: ...


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...
    def fetchone(self) -> Any: ...
    def fetchall(self) -> list[Any]: ...
    def fetchmany(self, size: int = ..., /) -> list[Any]: ...
    def __iter__(self) -> Iterator[Any]: ...


def quoted(name: str) -> str:
    """An identifier, quoted for both engines (a column may be a reserved word)."""
    return '"' + name.replace('"', '""') + '"'


def is_postgres_url(target: object) -> bool:
    return isinstance(target, str) and target.startswith(("postgresql://", "postgres://"))


def db_errors() -> tuple[type[Exception], ...]:
    """The database error types of the engines loaded in this process, for ``except``
    clauses (psycopg's only once a PostgreSQL store was opened: no error of it can
    happen before)."""
    pg = sys.modules.get("psycopg")
    return (sqlite3.Error, pg.Error) if pg is not None else (sqlite3.Error,)


def pg_error(exc: BaseException) -> bool:
    pg = sys.modules.get("psycopg")
    return pg is not None and isinstance(exc, pg.Error)


class Connection:
    """A connection of either engine; the store's components and callers use only this."""

    engine: str = SQLITE

    def __init__(self, raw: Any, key_dir: Path | None) -> None:
        self.raw = raw
        #: where ``seen.key`` lives (the sealer's secret, never in the database);
        #: None for a database in memory (a secret for this process)
        self.key_dir = key_dir

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        cur: Cursor = self.raw.execute(sql, params)
        return cur

    def executemany(self, sql: str, seq: Iterable[Params]) -> None:
        self.raw.executemany(sql, seq)

    @property
    def in_transaction(self) -> bool:
        return bool(self.raw.in_transaction)

    def begin_write(self, serial: bool = True) -> None:
        self.raw.execute("BEGIN IMMEDIATE")

    def lock_writes(self) -> None:
        """In a transaction begun with ``serial=False``: from here on, one writer at a
        time (SQLite: always so). Call it before the transaction's first statement, or
        not at all: a transaction holding row locks that then waits for this lock could
        deadlock with one holding the lock."""

    def commit(self) -> None:
        self.raw.execute("COMMIT")

    def rollback(self) -> None:
        self.raw.execute("ROLLBACK")

    @property
    def broken(self) -> bool:
        return False

    def tables(self) -> set[str]:
        return {r[0] for r in self.raw.execute(
            "SELECT name FROM sqlite_schema WHERE type = 'table'")}

    def columns(self, table: str) -> list[str]:
        return [r[1] for r in self.raw.execute(f"PRAGMA table_info({quoted(table)})")]

    def insert_rows(self, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        """Rows as they are, ids included (a store copied from another)."""
        cols = ", ".join(quoted(c) for c in columns)
        marks = ", ".join("?" * len(columns))
        self.executemany(f"INSERT INTO {quoted(table)} ({cols}) VALUES ({marks})", rows)

    def reset_ids(self, table: str) -> None:
        """After :meth:`insert_rows`: new rows get ids above the copied ones (SQLite's
        rowids do by themselves)."""

    def close(self) -> None:
        self.raw.close()


class PgRow:
    """A PostgreSQL row, addressable like ``sqlite3.Row`` (name or index; ``dict(row)``)."""

    __slots__ = ("_index", "_values")

    def __init__(self, values: Sequence[Any], index: dict[str, int]) -> None:
        self._values = values
        self._index = index

    def __getitem__(self, key: int | str, /) -> Any:
        if isinstance(key, str):
            return self._values[self._index[key]]
        return self._values[key]

    def keys(self) -> list[str]:
        return list(self._index)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, PgRow):
            return tuple(self._values) == tuple(other._values)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(tuple(self._values))

    def __repr__(self) -> str:
        return f"PgRow({len(self._values)} columns)"


class PgConnection(Connection):
    engine = POSTGRESQL

    def execute(self, sql: str, params: Params = ()) -> Cursor:
        if params:
            cur: Cursor = self.raw.execute(pg_sql(sql), params)
        else:
            cur = self.raw.execute(pg_sql(sql, False))
        return cur

    def executemany(self, sql: str, seq: Iterable[Params]) -> None:
        with self.raw.cursor() as cur:
            cur.executemany(pg_sql(sql), seq)

    @property
    def in_transaction(self) -> bool:
        from psycopg.pq import TransactionStatus

        return bool(self.raw.info.transaction_status != TransactionStatus.IDLE)

    def begin_write(self, serial: bool = True) -> None:
        self.raw.execute("BEGIN")
        if serial:
            self.lock_writes()

    def lock_writes(self) -> None:
        self.raw.execute("SELECT pg_advisory_xact_lock(%s)", (WRITE_LOCK,))

    @property
    def broken(self) -> bool:
        return bool(self.raw.broken or self.raw.closed)

    def tables(self) -> set[str]:
        return {r[0] for r in self.raw.execute(
            "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()")}

    def columns(self, table: str) -> list[str]:
        return [r[0] for r in self.raw.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_schema ="
            " current_schema() AND table_name = %s ORDER BY ordinal_position", (table,))]

    def insert_rows(self, table: str, columns: Sequence[str],
                    rows: Sequence[Sequence[Any]]) -> None:
        cols = ", ".join(quoted(c) for c in columns)
        with self.raw.cursor() as cur, \
                cur.copy(f"COPY {quoted(table)} ({cols}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def reset_ids(self, table: str) -> None:
        serials = self.raw.execute(
            "SELECT column_name, pg_get_serial_sequence(%s, column_name)"
            " FROM information_schema.columns WHERE table_schema = current_schema()"
            " AND table_name = %s AND column_default LIKE 'nextval%%'", (table, table))
        for column, seq in serials.fetchall():
            self.raw.execute(f"SELECT setval(%s, COALESCE(max({quoted(column)}), 0) + 1,"
                             f" false) FROM {quoted(table)}", (seq,))


def connect_sqlite(path: Path | str, *, readonly: bool = False,
                   timeout: float = 30.0) -> Connection:
    if readonly:  # mode=ro through a URI, the path percent-encoded (?/# in paths)
        from urllib.parse import quote

        raw = sqlite3.connect(f"file:{quote(str(Path(path).resolve()))}?mode=ro", uri=True,
                              timeout=timeout, isolation_level=None, check_same_thread=False)
    else:
        raw = sqlite3.connect(path, timeout=timeout, isolation_level=None,
                              check_same_thread=False)
    raw.row_factory = sqlite3.Row
    key_dir = None if str(path) == ":memory:" else Path(path).parent
    return Connection(raw, key_dir)


def connect_postgres(url: str, *, password: str | None, key_dir: Path,
                     readonly: bool = False, timeout: float = 10.0) -> PgConnection:
    """Autocommit (``transaction()`` issues BEGIN/COMMIT itself, as on SQLite)."""
    import psycopg
    from psycopg.adapt import Dumper

    class _BoolAsInt(Dumper):  # flags are INTEGER columns on both engines
        oid = psycopg.adapters.types["int8"].oid

        def dump(self, obj: Any) -> bytes:
            return b"1" if obj else b"0"

    def factory(cursor: Any) -> Any:
        index: dict[str, int] = {}
        for i, col in enumerate(cursor.description or ()):
            index.setdefault(col.name, i)
        return lambda values: PgRow(values, index)

    kwargs: dict[str, Any] = {"autocommit": True, "connect_timeout": max(1, int(timeout)),
                              "row_factory": factory}
    if password is not None:
        kwargs["password"] = password
    if readonly:
        kwargs["options"] = "-c default_transaction_read_only=on"
    raw = psycopg.connect(url, **kwargs)
    raw.adapters.register_dumper(bool, _BoolAsInt)
    return PgConnection(raw, key_dir)


@lru_cache(maxsize=1024)
def pg_sql(sql: str, params: bool = True) -> str:
    """``?`` placeholders to ``%s`` (and ``%`` to ``%%``) outside quoted text."""
    out: list[str] = []
    quote: str | None = None
    for ch in sql:
        if quote is not None:
            if ch == quote:
                quote = None
            out.append("%%" if ch == "%" and params else ch)
        elif ch in "'\"":
            quote = ch
            out.append(ch)
        elif ch == "?":
            out.append("%s")
        elif ch == "%" and params:
            out.append("%%")
        else:
            out.append(ch)
    return "".join(out)


_PG_TYPES = [
    (re.compile(r"\bINTEGER\s+PRIMARY\s+KEY(\s+AUTOINCREMENT)?\b", re.I), "BIGSERIAL PRIMARY KEY"),
    (re.compile(r"\bAUTOINCREMENT\b", re.I), ""),
    (re.compile(r"\bINTEGER\b", re.I), "BIGINT"),
    (re.compile(r"\bREAL\b", re.I), "DOUBLE PRECISION"),
    (re.compile(r"\bBLOB\b", re.I), "BYTEA"),
    (re.compile(r"\bTEXT\b", re.I), 'TEXT COLLATE "C"'),
    (re.compile(r"(?<![\"\w])user(?=\s+TEXT\b)", re.I), '"user"'),  # a reserved word there
]

#: a statement of a migration that only SQLite runs (a fix of rows that only old SQLite
#: files hold; a PostgreSQL store is created by this version or copied from an upgraded file)
SQLITE_ONLY = "-- sqlite only"


def pg_ddl(statement: str) -> str | None:
    """A migration statement in PostgreSQL's words; None for one only SQLite runs."""
    if statement.lstrip().startswith(SQLITE_ONLY):
        return None
    if not re.match(r"\s*(CREATE\s+TABLE|ALTER\s+TABLE)", statement, re.I):
        return statement
    for pattern, repl in _PG_TYPES:
        statement = pattern.sub(repl, statement)
    return statement


def split_statements(script: str) -> list[str]:
    """A migration script as statements (execute() runs one at a time, and SQLite's
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
