"""State store component `outbox`: alerts and their per-channel deliveries.

An alert is written here in the same transaction as the hit that caused it
(transactional outbox), then delivered by :mod:`pipelines.alerts.worker`.
``alerts`` holds what was said (a JSON payload with masked identifiers only);
``deliveries`` holds one row per (alert, channel) with its state:

``pending`` → (claimed) → ``delivered``, or ``retrying`` with a backoff, or
``dead`` after N attempts. ``batched`` rows wait for their channel's digest,
are ``digesting`` while a digest alert carries them and ``digested`` once that
digest is delivered.

Times are stored as UTC ISO-8601 strings of one fixed format, so they compare
as text.

Every alert has a random ``uid`` (a UUID): idempotency keys and e-mail
Message-IDs are built from it, so they are unique across installations, a
reinstall or a second deployment (an alert id alone restarts at 1 with every
new state file, and receivers would drop new alerts as duplicates). A claimed
delivery records its lease in ``claimed_until``, so a daemon starting after
one that was killed mid-send can release exactly those rows.
"""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from leaksentry.store.engine import Connection, Row

COMPONENT = "outbox"
MIGRATIONS: list[str] = [
    """
    CREATE TABLE alerts (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,            -- hit, resighting, digest, health, recovery, test
        severity TEXT NOT NULL,
        source TEXT,
        sha256 TEXT,
        records_key TEXT,
        hit_id INTEGER,
        thread_id INTEGER,             -- the first alert of a re-sighting thread
        created_at TEXT NOT NULL,
        payload TEXT NOT NULL
    );
    CREATE INDEX alerts_sha256 ON alerts(sha256, created_at);
    CREATE INDEX alerts_records ON alerts(records_key, created_at);
    CREATE TABLE deliveries (
        id INTEGER PRIMARY KEY,
        alert_id INTEGER NOT NULL REFERENCES alerts(id),
        channel TEXT NOT NULL,
        state TEXT NOT NULL,           -- pending retrying delivered dead batched digested
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at TEXT NOT NULL,
        last_error TEXT,
        created_at TEXT NOT NULL,
        delivered_at TEXT,
        digest_id INTEGER,             -- the digest alert that carried a batched row
        UNIQUE(alert_id, channel)
    );
    CREATE INDEX deliveries_due ON deliveries(state, next_attempt_at);
    CREATE INDEX deliveries_channel ON deliveries(channel, created_at);
    CREATE TABLE alert_health (
        source TEXT PRIMARY KEY,
        announced_healthy INTEGER NOT NULL,
        announced_at TEXT NOT NULL,
        alert_id INTEGER
    );
    """,
    # 2: per-alert UUIDs (keys unique across installations); leases marked as such.
    # Alerts written before keep uid NULL and their old key (a retry stays recognisable).
    # Re-sightings are kind "re-sighting" at low severity (the document's own severity
    # is the payload's hit_severity): never a second critical page.
    """
    ALTER TABLE alerts ADD COLUMN uid TEXT;
    ALTER TABLE deliveries ADD COLUMN claimed_until TEXT;
    -- sqlite only: rows of old files (a PostgreSQL store starts at this version)
    UPDATE alerts SET kind = 're-sighting', severity = 'low',
        payload = json_set(payload, '$.kind', 're-sighting', '$.severity', 'low',
                           '$.hit_severity', json_extract(payload, '$.severity'))
        WHERE kind = 'resighting';
    """,
]

#: alert kinds (the ``kind`` column, the payload's ``kind``, the webhook's ``type``)
HIT, RESIGHTING, DIGEST = "hit", "re-sighting", "digest"
HEALTH, RECOVERY, TEST = "health", "recovery", "test"
#: never a page: sent with the lowest priority every channel has
LOW_PRIORITY_KINDS = (RESIGHTING, DIGEST, RECOVERY, TEST)

ACTIVE = ("pending", "retrying")
STATES = ("pending", "retrying", "delivered", "dead", "batched", "digesting", "digested")


def ts(dt: datetime) -> str:
    """The one stored time format (UTC, microseconds): text order is time order."""
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f+00:00")


def parse_ts(value: str) -> datetime:
    return datetime.fromisoformat(value)


@dataclass(frozen=True, slots=True)
class Alert:
    id: int
    kind: str
    severity: str
    source: str | None
    sha256: str | None
    records_key: str | None
    hit_id: int | None
    thread_id: int | None
    created_at: datetime
    payload: dict[str, Any]
    uid: str | None = None  # None for alerts written before uids existed


@dataclass(frozen=True, slots=True)
class Delivery:
    id: int
    alert_id: int
    channel: str
    state: str
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    created_at: datetime
    delivered_at: datetime | None


def delivery_key(alert: Alert, channel: str) -> str:
    """The receiver's idempotency key: the same on every retry and across restarts,
    different for every alert of every installation."""
    if alert.uid:
        return f"leaksentry-{alert.uid}-{channel}"
    return f"leaksentry-alert-{alert.id}-{channel}"  # written before uids existed


def _alert(row: Row) -> Alert:
    return Alert(
        id=row["id"], kind=row["kind"], severity=row["severity"], source=row["source"],
        sha256=row["sha256"], records_key=row["records_key"], hit_id=row["hit_id"],
        thread_id=row["thread_id"], created_at=parse_ts(row["created_at"]),
        payload=json.loads(row["payload"]), uid=row["uid"],
    )


def _delivery(row: Row) -> Delivery:
    return Delivery(
        id=row["id"], alert_id=row["alert_id"], channel=row["channel"], state=row["state"],
        attempts=row["attempts"], next_attempt_at=parse_ts(row["next_attempt_at"]),
        last_error=row["last_error"], created_at=parse_ts(row["created_at"]),
        delivered_at=parse_ts(row["delivered_at"]) if row["delivered_at"] else None,
    )


# -- writing -----------------------------------------------------------------

def insert_alert(conn: Connection, *, kind: str, severity: str, created_at: datetime,
                 payload: dict[str, Any], source: str | None = None, sha256: str | None = None,
                 records_key: str | None = None, hit_id: int | None = None,
                 thread_id: int | None = None) -> int:
    row = conn.execute(
        "INSERT INTO alerts(kind, severity, source, sha256, records_key, hit_id, thread_id,"
        " created_at, payload, uid) VALUES (?,?,?,?,?,?,?,?,?,?) RETURNING id",
        (kind, severity, source, sha256, records_key or None, hit_id, thread_id,
         ts(created_at), json.dumps(payload, sort_keys=True), str(uuid.uuid4())),
    ).fetchone()
    alert_id = int(row[0])
    payload = {**payload, "alert_id": alert_id}
    if thread_id is not None:
        payload["thread_id"] = thread_id
    conn.execute("UPDATE alerts SET payload = ? WHERE id = ?",
                 (json.dumps(payload, sort_keys=True), alert_id))
    return alert_id


def insert_delivery(conn: Connection, alert_id: int, channel: str, *, state: str,
                    now: datetime) -> None:
    conn.execute(
        "INSERT INTO deliveries(alert_id, channel, state, next_attempt_at, created_at)"
        " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
        (alert_id, channel, state, ts(now), ts(now)),
    )


def claim(conn: Connection, delivery_id: int, now: datetime, lease_until: datetime) -> bool:
    """Take a due row for one attempt: count the attempt and push its due time past the
    lease, so a worker killed mid-send leaves it to be retried, not lost."""
    cur = conn.execute(
        "UPDATE deliveries SET attempts = attempts + 1, next_attempt_at = ?, claimed_until = ?"
        " WHERE id = ? AND state IN ('pending', 'retrying') AND next_attempt_at <= ?",
        (ts(lease_until), ts(lease_until), delivery_id, ts(now)),
    )
    return cur.rowcount == 1


def release_leases(conn: Connection, now: datetime) -> int:
    """Make rows claimed by a worker that died mid-send due now. Only for the one
    process that can deliver (the daemon, under its exclusive lock): a live worker's
    lease would be released too."""
    return conn.execute(
        "UPDATE deliveries SET next_attempt_at = ?, claimed_until = NULL"
        " WHERE claimed_until IS NOT NULL AND state IN ('pending', 'retrying')",
        (ts(now),)).rowcount


def mark_delivered(conn: Connection, delivery_id: int, now: datetime) -> None:
    conn.execute("UPDATE deliveries SET state = 'delivered', delivered_at = ?, last_error = NULL,"
                 " claimed_until = NULL WHERE id = ?", (ts(now), delivery_id))
    conn.execute("UPDATE deliveries SET state = 'digested' WHERE digest_id ="
                 " (SELECT alert_id FROM deliveries WHERE id = ?)", (delivery_id,))


def mark_failed(conn: Connection, delivery_id: int, error: str, *,
                retry_at: datetime | None) -> None:
    """``retry_at`` None makes the row a dead letter."""
    if retry_at is None:
        conn.execute("UPDATE deliveries SET state = 'dead', last_error = ?, claimed_until = NULL"
                     " WHERE id = ?", (error, delivery_id))
    else:
        conn.execute("UPDATE deliveries SET state = 'retrying', last_error = ?,"
                     " next_attempt_at = ?, claimed_until = NULL WHERE id = ?",
                     (error, ts(retry_at), delivery_id))


def requeue_dead(conn: Connection, now: datetime, ids: list[int] | None = None) -> int:
    """Dead letters back to pending with a fresh attempt budget."""
    q = ("UPDATE deliveries SET state = 'pending', attempts = 0, next_attempt_at = ?"
         " WHERE state = 'dead'")
    args: list[Any] = [ts(now)]
    if ids:
        q += f" AND id IN ({','.join('?' * len(ids))})"
        args += ids
    return conn.execute(q, args).rowcount


# -- reading -----------------------------------------------------------------

def get_alert(conn: Connection, alert_id: int) -> Alert | None:
    row = conn.execute("SELECT * FROM alerts WHERE id = ?", (alert_id,)).fetchone()
    return _alert(row) if row else None


def get_delivery(conn: Connection, delivery_id: int) -> Delivery | None:
    row = conn.execute("SELECT * FROM deliveries WHERE id = ?", (delivery_id,)).fetchone()
    return _delivery(row) if row else None


def due_deliveries(conn: Connection, now: datetime, limit: int = 100) -> list[Delivery]:
    rows = conn.execute(
        "SELECT * FROM deliveries WHERE state IN ('pending', 'retrying') AND next_attempt_at <= ?"
        " ORDER BY next_attempt_at, id LIMIT ?", (ts(now), limit))
    return [_delivery(r) for r in rows]


def deliveries(conn: Connection, *, state: str | None = None,
               limit: int = 100) -> list[tuple[Delivery, Alert]]:
    q = "SELECT d.*, a.kind AS a_kind FROM deliveries d JOIN alerts a ON a.id = d.alert_id"
    args: list[Any] = []
    if state:
        q += " WHERE d.state = ?"
        args.append(state)
    q += " ORDER BY d.id DESC LIMIT ?"
    args.append(limit)
    out = []
    for row in conn.execute(q, args).fetchall():
        alert = get_alert(conn, row["alert_id"])
        assert alert is not None
        out.append((_delivery(row), alert))
    return out


def find_thread_root(conn: Connection, *, sha256: str, records_key: str | None,
                     since: datetime) -> Alert | None:
    """The first hit alert for this document or this set of records inside the window."""
    q = ("SELECT * FROM alerts WHERE kind = 'hit' AND created_at >= ? AND (sha256 = ?"
         + (" OR records_key = ?" if records_key else "") + ") ORDER BY id LIMIT 1")
    args: list[Any] = [ts(since), sha256]
    if records_key:
        args.append(records_key)
    row = conn.execute(q, args).fetchone()
    return _alert(row) if row else None


def channel_sent_since(conn: Connection, channel: str, since: datetime) -> int:
    """Messages planned for immediate sending on a channel since a time (rate limit)."""
    row = conn.execute(
        "SELECT count(*) FROM deliveries WHERE channel = ? AND created_at >= ?"
        " AND state NOT IN ('batched', 'digested')", (channel, ts(since))).fetchone()
    return int(row[0])


def batched_channels(conn: Connection) -> list[tuple[str, datetime]]:
    """Channels with rows waiting for a digest, with the oldest row's time."""
    rows = conn.execute("SELECT channel, min(created_at) FROM deliveries WHERE state = 'batched'"
                        " GROUP BY channel ORDER BY channel")
    return [(r[0], parse_ts(r[1])) for r in rows]


def batched_for(conn: Connection, channel: str) -> list[tuple[Delivery, Alert]]:
    rows = conn.execute("SELECT * FROM deliveries WHERE state = 'batched' AND channel = ?"
                        " ORDER BY id", (channel,)).fetchall()
    out = []
    for row in rows:
        alert = get_alert(conn, row["alert_id"])
        assert alert is not None
        out.append((_delivery(row), alert))
    return out


def abandon_batched(conn: Connection, channel: str, error: str) -> int:
    """A channel's rows waiting for a digest become dead letters (the channel is gone
    from the config): visible in ``alerts list``, sent again by ``alerts retry``."""
    return conn.execute("UPDATE deliveries SET state = 'dead', last_error = ?"
                        " WHERE state = 'batched' AND channel = ?", (error, channel)).rowcount


def attach_to_digest(conn: Connection, delivery_ids: list[int], digest_id: int) -> None:
    """Batched rows now travel in a digest; they become `digested` when it is delivered."""
    conn.executemany("UPDATE deliveries SET digest_id = ?, state = 'digesting' WHERE id = ?",
                     [(digest_id, i) for i in delivery_ids])


def outbox_counts(conn: Connection) -> dict[str, int]:
    """For `leaksentry status`: pending (incl. waiting for a digest), retrying, delivered
    (incl. carried by a delivered digest) and dead."""
    out = {"pending": 0, "retrying": 0, "delivered": 0, "dead": 0}
    fold = {"batched": "pending", "digesting": "pending", "digested": "delivered"}
    for state, n in conn.execute("SELECT state, count(*) FROM deliveries GROUP BY state"):
        key = fold.get(state, state)
        out[key] = out.get(key, 0) + n
    return out


def health_announced(conn: Connection) -> dict[str, bool]:
    return {r[0]: bool(r[1]) for r in
            conn.execute("SELECT source, announced_healthy FROM alert_health")}


def set_health_announced(conn: Connection, source: str, healthy: bool, now: datetime,
                         alert_id: int | None) -> None:
    conn.execute(
        "INSERT INTO alert_health(source, announced_healthy, announced_at, alert_id)"
        " VALUES (?,?,?,?) ON CONFLICT(source) DO UPDATE SET"
        " announced_healthy = excluded.announced_healthy, announced_at = excluded.announced_at,"
        " alert_id = excluded.alert_id",
        (source, int(healthy), ts(now), alert_id),
    )
