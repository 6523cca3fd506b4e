"""Database files: SQLite (in memory, read-only) and Microsoft Access (through mdbtools).

Each table row is one record part at location "<table>", ``row`` = the SQLite rowid
(the row number for Access and WITHOUT ROWID tables), cells in column order, so the
matcher places a match at "patients!C17"; ``header`` carries the column names.

SQLite: the file is deserialized into a private in-memory connection: nothing is
written anywhere, and nothing from the file runs. ``query_only``, ``trusted_schema=OFF``,
extensions never loaded, an authorizer that allows reading only, and only ordinary
tables are read (virtual tables are modules, their content sits in shadow tables that
are read like the rest). A progress handler enforces the document's deadline inside
SQLite. Tables are read one by one: a corrupt page costs that table (a ``skipped``
entry, after the rows read before it), not the database.
"""

from __future__ import annotations

import csv
import io
import sqlite3
import time
from collections.abc import Iterator
from typing import Any

from pipelines.extract.detect import detect
from pipelines.extract.node import Node, mask_name, safe_name
from pipelines.extract.state import Failed, State, Stop, reason
from pipelines.extract.text import row_text
from pipelines.extract.tools import memory_file, run_tool
from pipelines.model import TextPart

_READ_OK = {sqlite3.SQLITE_SELECT, sqlite3.SQLITE_READ, sqlite3.SQLITE_FUNCTION,
            sqlite3.SQLITE_PRAGMA}
_PRAGMAS = {"query_only", "trusted_schema", "cell_size_check", "table_info"}


def _authorizer(action: int, arg1: str | None, arg2: str | None, *_: Any) -> int:
    if action not in _READ_OK:
        return sqlite3.SQLITE_DENY
    if action == sqlite3.SQLITE_PRAGMA and (arg1 or "").lower() not in _PRAGMAS:
        return sqlite3.SQLITE_DENY
    return sqlite3.SQLITE_OK


def _open(data: bytes, node: Node, state: State) -> sqlite3.Connection:
    image = bytearray(data)
    if len(image) > 19 and image[18:20] == b"\x02\x02":
        image[18:20] = b"\x01\x01"  # WAL mode: an in-memory copy reads as rollback-journal
    conn = sqlite3.connect(":memory:", isolation_level=None, check_same_thread=False)
    try:
        conn.deserialize(bytes(image))
        conn.execute("PRAGMA query_only=ON")
        conn.execute("PRAGMA trusted_schema=OFF")
        conn.execute("PRAGMA cell_size_check=ON")
        conn.set_authorizer(_authorizer)
        deadline = state.deadline
        clock = time.monotonic
        conn.set_progress_handler(lambda: 1 if clock() > deadline else 0, 20_000)
    except sqlite3.Error as e:
        conn.close()
        raise Failed("corrupt", f"{node.label}: SQLite database unreadable: "
                                f"{reason(e)}") from None
    return conn


def _tables(conn: sqlite3.Connection, node: Node) -> list[str]:
    try:
        rows = conn.execute("SELECT name, sql FROM sqlite_master WHERE type = 'table'"
                            " ORDER BY rootpage").fetchall()
    except sqlite3.DatabaseError as e:
        if "encrypt" in str(e).lower() or "not a database" in str(e).lower():
            raise Failed("encrypted" if "encrypt" in str(e).lower() else "corrupt",
                         f"{node.label}: SQLite database unreadable: {reason(e)}") from None
        raise Failed("corrupt", f"{node.label}: SQLite schema unreadable: "
                                f"{reason(e)}") from None
    return [name for name, sql in rows
            if isinstance(name, str) and not (sql or "").lstrip().upper().startswith(
                "CREATE VIRTUAL")]


def _count_table(state: State, loc: str) -> None:
    """Tables count against the member limit (a schema of a million tables is a bomb)."""
    state.tick()
    n = state.details["tables_read"] = state.details.get("tables_read", 0) + 1
    if n > state.config.max_members:
        raise Stop("too_large", f"{safe_name(loc)}: more than {state.config.max_members} "
                                f"database tables")


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _cell(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")  # text stored as a BLOB
        except UnicodeDecodeError:
            return ""  # binary content: not a text/number column
    if isinstance(v, float) and v.is_integer() and abs(v) < 1e16:
        return str(int(v))
    return str(v)


def _rows(conn: sqlite3.Connection, table: str) -> tuple[sqlite3.Cursor, bool]:
    """(cursor, first column is the rowid)."""
    try:
        return conn.execute(f"SELECT _rowid_, * FROM {_quote(table)}"), True
    except sqlite3.OperationalError as e:
        if "_rowid_" not in str(e):
            raise
        return conn.execute(f"SELECT * FROM {_quote(table)}"), False  # WITHOUT ROWID


def sqlite(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    conn = _open(data, node, state)
    try:
        tables = _tables(conn, node)
        state.details["tables"] = state.details.get("tables", 0) + len(tables)
        for table in tables:
            loc = node.at(mask_name(table))
            _count_table(state, loc)
            yield from _table(conn, table, loc, state, node)
    finally:
        conn.close()


def _files(values: tuple[Any, ...], names: tuple[str, ...], state: State
           ) -> list[tuple[str, bytes]]:
    """BLOB cells holding a document of a known format (a scan, an attachment)."""
    out = []
    for name, v in zip(names, values, strict=False):
        if isinstance(v, bytes) and len(v) >= 64:
            kind = detect(v[: 1 << 20], "")
            if kind not in ("text", "binary", "csv") and state.handles(kind):
                out.append((name, v))
    return out


def _table(conn: sqlite3.Connection, table: str, loc: str, state: State,
           node: Node) -> Iterator[TextPart]:
    """Rows as record parts; a BLOB holding a document is extracted as a member
    ("his.db/attachments/17/content")."""
    n = 0
    try:
        cur, has_rowid = _rows(conn, table)
        names = tuple(d[0] for d in cur.description)
        header = names[1:] if has_rowid else names
        for row in cur:
            n += 1
            if n % 4096 == 0:
                state.tick()
            if has_rowid:
                rowid, values = row[0], row[1:]
            else:
                rowid, values = n, row
            cells = [_cell(v) for v in values]
            text = row_text(cells)
            row_no = rowid if isinstance(rowid, int) else n
            if len(text) >= len(cells):  # not every cell empty
                yield TextPart(text, loc, row_no, header)
            for column, blob in _files(values, header, state):
                child = node.child(f"{mask_name(table)}/{row_no}/{column}")
                state.member(safe_name(child.label))
                yield from state.walk(blob, child)
    except sqlite3.OperationalError as e:
        if "interrupted" in str(e):
            state.tick()  # the deadline passed inside SQLite: the document's timeout
            raise Stop("timeout", f"{safe_name(loc)}: stopped at the time limit") from None
        state.skip(loc, "corrupt", f"{safe_name(loc)}: table unreadable after {n} rows: "
                                   f"{reason(e)}", note=True)
    except sqlite3.DatabaseError as e:
        state.skip(loc, "corrupt", f"{safe_name(loc)}: table unreadable after {n} rows: "
                                   f"{reason(e)}", note=True)


# -- Microsoft Access -------------------------------------------------------------------

def access(data: bytes, node: Node, state: State) -> Iterator[TextPart]:
    """Every table through mdb-tables / mdb-export (Debian ``mdbtools``), when installed."""
    with memory_file(data) as path:
        listing = run_tool(["mdb-tables", "-1", path], state, node.label)
        tables = [t for t in listing.decode("utf-8", "replace").splitlines() if t.strip()]
        state.details["tables"] = state.details.get("tables", 0) + len(tables)
        for table in tables:
            loc = node.at(mask_name(table))
            _count_table(state, loc)
            try:
                out = run_tool(["mdb-export", "-b", "strip", path, table], state, loc)
            except Failed as e:
                state.skip(loc, e.status, e.message, note=True)
                continue
            reader = csv.reader(io.StringIO(out.decode("utf-8", "replace")))
            header: tuple[str, ...] | None = None
            for n, row in enumerate(reader):
                if header is None:
                    header = tuple(row)
                    continue
                if any(row):
                    yield TextPart(row_text(row), loc, n, header)
