"""State store component `evidence`: which hit documents the vault holds, and who
opened them.

A row is written in the same transaction as its hit, after the encrypted file has
been renamed into place, so a committed row always has its file; a file without a
row (a crash between rename and commit) is removed by the vault's sweep. Rows are
not tied to ``hits`` by a foreign key: local retention of hits and evidence
retention are separate settings, and a row must outlive its hit until its file is
deleted.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime

from leaksentry.store.engine import Connection, Row

COMPONENT = "evidence"
MIGRATIONS: list[str] = [
    """
    CREATE TABLE evidence (
        hit_id INTEGER PRIMARY KEY,
        file TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        recipients TEXT NOT NULL DEFAULT '[]',
        stored_at TEXT NOT NULL
    );
    CREATE INDEX evidence_stored_at ON evidence(stored_at);
    CREATE TABLE evidence_audit (
        id INTEGER PRIMARY KEY,
        hit_id INTEGER NOT NULL,
        action TEXT NOT NULL,
        user TEXT NOT NULL,
        host TEXT NOT NULL,
        detail TEXT,
        at TEXT NOT NULL
    );
    """,
]


@dataclass(frozen=True, slots=True)
class EvidenceRow:
    hit_id: int
    file: str  # name inside the vault directory
    sha256: str  # of the plaintext document
    size: int
    recipients: list[str]  # key fingerprints, never the keys' owners
    stored_at: datetime


def _iso(dt: datetime) -> str:
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _row(r: Row) -> EvidenceRow:
    return EvidenceRow(hit_id=r["hit_id"], file=r["file"], sha256=r["sha256"], size=r["size"],
                       recipients=json.loads(r["recipients"]),
                       stored_at=datetime.fromisoformat(r["stored_at"]))


def insert(conn: Connection, row: EvidenceRow) -> None:
    conn.execute(
        "INSERT INTO evidence(hit_id, file, sha256, size, recipients, stored_at)"
        " VALUES (?,?,?,?,?,?) ON CONFLICT(hit_id) DO UPDATE SET file=excluded.file,"
        " sha256=excluded.sha256, size=excluded.size, recipients=excluded.recipients,"
        " stored_at=excluded.stored_at",
        (row.hit_id, row.file, row.sha256, row.size, json.dumps(row.recipients),
         _iso(row.stored_at)))


def get(conn: Connection, hit_id: int) -> EvidenceRow | None:
    r = conn.execute("SELECT * FROM evidence WHERE hit_id = ?", (hit_id,)).fetchone()
    return _row(r) if r else None


def all_rows(conn: Connection) -> list[EvidenceRow]:
    return [_row(r) for r in conn.execute("SELECT * FROM evidence ORDER BY hit_id")]


def files(conn: Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT file FROM evidence")}


def older_than(conn: Connection, cutoff: datetime) -> list[EvidenceRow]:
    return [_row(r) for r in conn.execute(
        "SELECT * FROM evidence WHERE stored_at < ? ORDER BY hit_id", (_iso(cutoff),))]


def delete(conn: Connection, hit_id: int) -> None:
    conn.execute("DELETE FROM evidence WHERE hit_id = ?", (hit_id,))


def audit(conn: Connection, hit_id: int, action: str, user: str, host: str,
          detail: str | None, at: datetime) -> None:
    conn.execute("INSERT INTO evidence_audit(hit_id, action, \"user\", host, detail, at)"
                 " VALUES (?,?,?,?,?,?)", (hit_id, action, user, host, detail, _iso(at)))


def audit_log(conn: Connection, hit_id: int | None = None) -> list[dict[str, object]]:
    sql, args = "SELECT * FROM evidence_audit", tuple[int, ...]()
    if hit_id is not None:
        sql, args = sql + " WHERE hit_id = ?", (hit_id,)
    return [dict(r) for r in conn.execute(sql + " ORDER BY id", args)]
