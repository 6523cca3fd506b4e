"""State store component `seen`: what each source has already discovered and processed.

Keyed by (source, item id). An item is first recorded the moment it is
discovered (``pending``: first-seen is known even if the fetch fails), and is
``done`` only after its document went through the pipeline, with the content
sha256. A later crawl skips a ``done`` item unless the listing shows a new
version (e.g. ``updated_at``, an ETag) or the fetched content hashes
differently. "Not ready yet" items are re-queued with a retry time, never
dropped; deleted ones are recorded as ``gone``. Per-source key/values (ETags
of feed pages, rate-limit resets) live in ``source_state``.

Item ids, URLs and state keys are stranger-controlled (a feed id, a listing path, a
watched URL's query may hold an identifier): through :class:`leaksentry.redaction.Sealer`,
one that holds an identifier is stored as a keyed digest (ids and keys, only compared)
and sealed (the URL and the raw id, needed again to retry a fetch), with a secret kept
in ``seen.key`` next to the database (mode 0600), never in it.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from leaksentry.paths import write_private
from leaksentry.redaction import Sealer, redact
from leaksentry.store.engine import Connection, Row

COMPONENT = "seen"
MIGRATIONS: list[str] = [
    """
    CREATE TABLE seen_items (
        source TEXT NOT NULL,
        item_id TEXT NOT NULL,
        url TEXT,
        status TEXT NOT NULL DEFAULT 'pending',
        sha256 TEXT,
        version TEXT,
        etag TEXT,
        last_modified TEXT,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        processed_at TEXT,
        retry_at TEXT,
        attempts INTEGER NOT NULL DEFAULT 0,
        note TEXT,
        PRIMARY KEY (source, item_id)
    );
    CREATE INDEX seen_items_retry ON seen_items(source, status, retry_at);
    CREATE TABLE source_state (
        source TEXT NOT NULL,
        key TEXT NOT NULL,
        value TEXT,
        updated_at TEXT NOT NULL,
        PRIMARY KEY (source, key)
    );
    """,
    # the raw item id, sealed, when ``item_id`` holds its keyed digest
    "ALTER TABLE seen_items ADD COLUMN sealed_id TEXT;",
]

_SEALERS: dict[str, Sealer] = {}
_SEALERS_LOCK = threading.Lock()
KEY_FILE = "seen.key"


def _secret(key_dir: Path | None) -> bytes:
    """The secret in the state directory (next to a SQLite file), made (0600) on first
    use; a database in memory gets one for this process. Every host of a cluster sharing
    one PostgreSQL store needs the same file.

    Made atomically (:func:`leaksentry.paths.write_private`): a process racing to make it
    (the shards of one crawl start together) either wins or reads the winner's complete
    key, never a half-written file."""
    if key_dir is None:
        return os.urandom(32)
    path = key_dir / KEY_FILE
    if not path.exists():
        key_dir.mkdir(parents=True, exist_ok=True, mode=0o700)  # a PostgreSQL store's
        secret = os.urandom(32)
        if write_private(path, secret, replace=False):
            return secret
        # another process made it first: use theirs
    data = path.read_bytes()
    if len(data) == 32:
        return data
    raise OSError(f"{path}: not a 32-byte key (delete it to start afresh)")


def sealer(conn: Connection) -> Sealer:
    """The sealer of the store behind ``conn``."""
    where = str(conn.key_dir) if conn.key_dir is not None else ""
    got = _SEALERS.get(where)
    if got is None:
        with _SEALERS_LOCK:
            got = _SEALERS.get(where)
            if got is None:
                got = _SEALERS[where] = Sealer(_secret(conn.key_dir))
    return got


def _ids(conn: Connection, item_id: str) -> tuple[Sealer, str, str | None]:
    """(sealer, the stored key of ``item_id``, its sealed raw form or None)."""
    sl = sealer(conn)
    key = sl.key(item_id)
    return sl, key, (None if key == item_id else sl.seal(item_id))

#: pending: discovered, not processed yet; retry: re-queued ("not ready", transient error);
#: done: processed; gone: deleted upstream; failed: gave up after too many attempts
STATUSES = ("pending", "retry", "done", "gone", "failed")


@dataclass(frozen=True, slots=True)
class SeenItem:
    source: str
    item_id: str
    url: str | None
    status: str
    sha256: str | None
    version: str | None
    etag: str | None
    last_modified: str | None
    first_seen: str
    last_seen: str
    retry_at: str | None
    attempts: int
    note: str | None


def _now(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).isoformat()


def _item(row: Row, sl: Sealer) -> SeenItem:
    sealed = row["sealed_id"]
    item_id = (sl.open(sealed) if sealed else None) or row["item_id"]
    return SeenItem(
        source=row["source"], item_id=item_id, url=sl.open(row["url"]), status=row["status"],
        sha256=row["sha256"], version=row["version"], etag=row["etag"],
        last_modified=row["last_modified"], first_seen=row["first_seen"],
        last_seen=row["last_seen"], retry_at=row["retry_at"], attempts=row["attempts"],
        note=row["note"],
    )


def get_item(conn: Connection, source: str, item_id: str) -> SeenItem | None:
    sl, key, _ = _ids(conn, item_id)
    row = conn.execute("SELECT * FROM seen_items WHERE source = ? AND item_id = ?",
                       (source, key)).fetchone()
    return _item(row, sl) if row else None


def needs_fetch(item: SeenItem | None, version: str | None = None,
                now: datetime | None = None) -> bool:
    """Should a discovered item be fetched? New, unfinished and re-versioned items are."""
    if item is None:
        return True
    if item.status == "gone":
        return False
    if item.status == "retry":
        return item.retry_at is None or item.retry_at <= _now(now)
    if item.status in ("pending", "failed"):
        return item.status == "pending"
    # done: only when the listing shows another version than the one processed
    return version is not None and version != item.version


def discovered(conn: Connection, source: str, item_id: str, url: str | None = None,
               *, now: datetime | None = None) -> SeenItem:
    """Record that an item was listed (first-seen at once); returns its state."""
    ts = _now(now)
    sl, key, sealed = _ids(conn, item_id)
    conn.execute(
        "INSERT INTO seen_items(source, item_id, sealed_id, url, status, first_seen,"
        " last_seen) VALUES (?,?,?,?,'pending',?,?) ON CONFLICT(source, item_id) DO UPDATE"
        " SET last_seen = excluded.last_seen, url = COALESCE(excluded.url, seen_items.url)",
        (source, key, sealed, sl.seal(url), ts, ts),
    )
    got = get_item(conn, source, item_id)
    assert got is not None
    return got


def content_changed(conn: Connection, source: str, item_id: str, sha256: str) -> bool:
    """True when this content was not processed for the item before."""
    row = conn.execute("SELECT sha256, status FROM seen_items WHERE source = ? AND item_id = ?",
                       (source, sealer(conn).key(item_id))).fetchone()
    return row is None or row["sha256"] != sha256 or row["status"] != "done"


def processed(conn: Connection, source: str, item_id: str, sha256: str, *,
              url: str | None = None, version: str | None = None, etag: str | None = None,
              last_modified: str | None = None, now: datetime | None = None) -> None:
    """The document went through the pipeline: remember its hash and version."""
    ts = _now(now)
    sl, key, sealed = _ids(conn, item_id)
    conn.execute(
        "INSERT INTO seen_items(source, item_id, sealed_id, url, status, sha256, version, etag,"
        " last_modified, first_seen, last_seen, processed_at, attempts)"
        " VALUES (?,?,?,?,'done',?,?,?,?,?,?,?,0) ON CONFLICT(source, item_id) DO UPDATE SET"
        " status='done', sha256=excluded.sha256, version=excluded.version,"
        " etag=excluded.etag, last_modified=excluded.last_modified,"
        " last_seen=excluded.last_seen, processed_at=excluded.processed_at,"
        " url=COALESCE(excluded.url, seen_items.url), retry_at=NULL, note=NULL, attempts=0",
        (source, key, sealed, sl.seal(url), sha256, version, etag, last_modified, ts, ts, ts),
    )


def unchanged(conn: Connection, source: str, item_id: str, *,
              version: str | None = None, etag: str | None = None,
              last_modified: str | None = None, now: datetime | None = None) -> None:
    """Fetched again (or 304) with the same content: refresh validators, keep the hash."""
    conn.execute(
        "UPDATE seen_items SET last_seen = ?, version = COALESCE(?, version),"
        " etag = COALESCE(?, etag), last_modified = COALESCE(?, last_modified),"
        " status = CASE WHEN sha256 IS NOT NULL THEN 'done' ELSE status END, retry_at = NULL"
        " WHERE source = ? AND item_id = ?",
        (_now(now), version, etag, last_modified, source, sealer(conn).key(item_id)),
    )


def requeue(conn: Connection, source: str, item_id: str, url: str | None,
            retry_at: datetime, note: str, *, max_attempts: int = 30,
            now: datetime | None = None) -> bool:
    """Try the item again at ``retry_at`` ("not ready yet", a transient error).

    Returns False when it has been tried ``max_attempts`` times: it is marked
    ``failed`` (recorded, visible, not retried forever)."""
    ts = _now(now)
    sl, key, sealed = _ids(conn, item_id)
    url = sl.seal(url)
    conn.execute(
        "INSERT INTO seen_items(source, item_id, sealed_id, url, status, first_seen,"
        " last_seen) VALUES (?,?,?,?,'pending',?,?) ON CONFLICT(source, item_id) DO NOTHING",
        (source, key, sealed, url, ts, ts),
    )
    row = conn.execute("SELECT attempts FROM seen_items WHERE source = ? AND item_id = ?",
                       (source, key)).fetchone()
    attempts = (row["attempts"] if row else 0) + 1
    status = "retry" if attempts < max_attempts else "failed"
    conn.execute(
        "UPDATE seen_items SET status = ?, retry_at = ?, attempts = ?, note = ?, last_seen = ?,"
        " url = COALESCE(?, url) WHERE source = ? AND item_id = ?",
        (status, retry_at.isoformat(), attempts, (redact(note) or "")[:300], ts, url, source,
         key),
    )
    return status == "retry"


def gone(conn: Connection, source: str, item_id: str, note: str,
         *, now: datetime | None = None) -> None:
    """Deleted upstream before it could be fetched: recorded, never retried."""
    ts = _now(now)
    _, key, sealed = _ids(conn, item_id)
    conn.execute(
        "INSERT INTO seen_items(source, item_id, sealed_id, status, first_seen, last_seen,"
        " note) VALUES (?,?,?,'gone',?,?,?) ON CONFLICT(source, item_id) DO UPDATE SET"
        " status='gone', note=excluded.note, last_seen=excluded.last_seen, retry_at=NULL",
        (source, key, sealed, ts, ts, (redact(note) or "")[:300]),
    )


def due_retries(conn: Connection, source: str, *, now: datetime | None = None,
                limit: int = 1000) -> list[SeenItem]:
    """Re-queued items whose retry time has come, oldest first."""
    rows = conn.execute(
        "SELECT * FROM seen_items WHERE source = ? AND status IN ('retry', 'pending')"
        " AND (retry_at IS NULL OR retry_at <= ?) AND url IS NOT NULL"
        " ORDER BY first_seen LIMIT ?",
        (source, _now(now), limit),
    )
    sl = sealer(conn)
    return [_item(r, sl) for r in rows]


def counts(conn: Connection, source: str) -> dict[str, int]:
    rows = conn.execute("SELECT status, count(*) FROM seen_items WHERE source = ?"
                        " GROUP BY status", (source,))
    return {r[0]: r[1] for r in rows}


def get_state(conn: Connection, source: str, key: str) -> str | None:
    row = conn.execute("SELECT value FROM source_state WHERE source = ? AND key = ?",
                       (source, sealer(conn).key(key))).fetchone()
    return row[0] if row else None


def set_state(conn: Connection, source: str, key: str, value: str | None) -> None:
    conn.execute(
        "INSERT INTO source_state(source, key, value, updated_at) VALUES (?,?,?,?)"
        " ON CONFLICT(source, key) DO UPDATE SET value=excluded.value,"
        " updated_at=excluded.updated_at",
        (source, sealer(conn).key(key), value, _now()),
    )


def load_source(conn: Connection, source: str) -> dict[str, SeenItem]:
    """Every item of a source, for a crawl's in-memory lookups (one query, not one per item)."""
    rows = conn.execute("SELECT * FROM seen_items WHERE source = ?", (source,))
    sl = sealer(conn)
    items = (_item(r, sl) for r in rows)
    return {i.item_id: i for i in items}


def discovered_many(conn: Connection, source: str,
                    items: list[tuple[str, str | None]], *, now: datetime | None = None) -> None:
    """:func:`discovered` for a batch of (item_id, url), in one transaction."""
    if not items:
        return
    ts = _now(now)
    sl = sealer(conn)
    rows = []
    for item_id, url in items:
        key = sl.key(item_id)
        rows.append((source, key, None if key == item_id else sl.seal(item_id), sl.seal(url),
                     ts, ts))
    conn.executemany(
        "INSERT INTO seen_items(source, item_id, sealed_id, url, status, first_seen,"
        " last_seen) VALUES (?,?,?,?,'pending',?,?) ON CONFLICT(source, item_id) DO UPDATE"
        " SET last_seen = excluded.last_seen, url = COALESCE(excluded.url, seen_items.url)",
        rows,
    )
