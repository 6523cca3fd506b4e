"""The Elasticsearch spool: documents wait in SQLite until the cluster has them.

:func:`enqueue_finding` runs inside :func:`pipelines.flow.record_finding`'s
transaction, so a hit is never stored without its Elasticsearch documents
(nor the reverse). :func:`drain` delivers them with the client's
``helpers.streaming_bulk``: ``create`` ops with deterministic ``_id``s, so a
re-sent batch (a crash after the cluster took it but before the spool row
was deleted) is answered 409 and counts as delivered — each document lands
exactly once. 429s are retried with backoff by the helper; an unreachable
cluster leaves everything spooled and raises nothing; an item the cluster
refuses for good (400: a mapping error) is kept as ``rejected`` with its
one-line reason, and the rest of the batch goes in.

``event.ingested`` is set on each document as it is sent: it is when the
cluster got it, and the Kibana rule's time field (a critical hit first seen
during an outage is still "new" when it arrives). A re-sighting spools an
``update`` of the hit document (``leaksentry.last_seen`` / ``sightings``), which
leaves ``event.ingested`` alone, so it never fires the rule a second time.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from leaksentry.errors import retryable_status
from leaksentry.redaction import redact
from leaksentry.store.engine import Connection, Row
from pipelines.model import Finding, StoredHit
from pipelines.sinks import ecs
from pipelines.sinks.client import Cluster, connect, dumps
from pipelines.sinks.errors import SinkError
from pipelines.sinks.local import hit_sightings
from pipelines.sinks.setup import ensure_installed

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from leaksentry.store import Store

log = logging.getLogger(__name__)

#: spool rows read per bulk round
DRAIN_BATCH = 5000
#: setup notes already logged by this process ("ISM is not supported ...")
_NOTED: set[str] = set()


@dataclass
class DrainReport:
    """What one :func:`drain` call did (counts of spooled documents)."""

    attempted: int = 0
    delivered: int = 0  # created now
    duplicates: int = 0  # 409: the cluster already had it (a re-send)
    rejected: int = 0  # refused for good, kept as 'rejected' with the reason
    #: re-sighting updates whose hit document is no longer in the index (retention deleted
    #: its month, or the cluster lost it): dropped, counted here and logged
    missing: int = 0
    retry_later: int = 0  # 429 after retries, 5xx: still pending
    pending: int = 0  # spool depth afterwards
    unreachable: bool = False
    error: str | None = None
    errors: list[str] = field(default_factory=list)  # per-item reasons (first few)

    @property
    def ok(self) -> bool:
        return self.error is None and self.rejected == 0 and self.retry_later == 0


def _suffix(kind: str, when: datetime) -> str:
    return ecs.month_index("", kind, when).lstrip("-")


def _enqueue(tx: Connection, kind: str, when: datetime, doc_id: str,
             doc: dict[str, Any]) -> None:
    tx.execute(
        "INSERT INTO es_spool(kind, index_suffix, doc_id, body, created_at)"
        " VALUES (?,?,?,?,?) ON CONFLICT DO NOTHING",
        (kind, _suffix(kind, when), doc_id, dumps(doc), datetime.now(UTC).isoformat()),
    )


def _enqueue_update(tx: Connection, kind: str, when: datetime, doc_id: str,
                    body: dict[str, Any]) -> None:
    """A partial update; a waiting update of the same document is replaced (its values are
    absolute, the newest wins)."""
    tx.execute(
        "INSERT INTO es_spool(kind, index_suffix, doc_id, op, body, created_at)"
        " VALUES (?,?,?,'update',?,?) ON CONFLICT(index_suffix, doc_id, op) DO UPDATE SET"
        " body = excluded.body, state = 'pending', attempts = 0, last_error = NULL",
        (kind, _suffix(kind, when), doc_id, dumps(body), datetime.now(UTC).isoformat()),
    )


def enqueue_finding(tx: Connection, finding: Finding, stored: StoredHit | None) -> None:
    """Spool the documents-index doc (always) and the hit doc (for a hit).

    A re-sighting (``stored.new`` False) spools no second hit doc (its ``_id`` is per
    content and URL): it spools a partial update of ``leaksentry.last_seen`` and
    ``leaksentry.sightings`` from the local store instead."""
    _enqueue(tx, ecs.DOCUMENTS, finding.fetched_at, ecs.document_id(finding),
             ecs.document_document(finding))
    if stored is None:
        return
    if stored.new:
        _enqueue(tx, ecs.HITS, stored.first_seen, ecs.hit_id(finding),
                 ecs.hit_document(finding, stored))
        return
    last_seen, sightings = hit_sightings(tx, stored.hit_id)
    _enqueue_update(tx, ecs.HITS, stored.first_seen, ecs.hit_id(finding),
                    ecs.sighting_update(last_seen, sightings))


def spool_depth(conn: Connection) -> int:
    """Documents waiting for delivery (rejected ones excluded)."""
    return int(conn.execute("SELECT count(*) FROM es_spool WHERE state = 'pending'")
               .fetchone()[0])


def spool_rejected(conn: Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM es_spool WHERE state = 'rejected'")
               .fetchone()[0])


def rejected_items(conn: Connection, limit: int = 20) -> list[Row]:
    return list(conn.execute(
        "SELECT id, kind, index_suffix, doc_id, last_error, last_attempt_at FROM es_spool"
        " WHERE state = 'rejected' ORDER BY id LIMIT ?", (limit,)))


def requeue_rejected(conn: Connection) -> int:
    """Put rejected items back (after a template fix)."""
    return conn.execute("UPDATE es_spool SET state = 'pending' WHERE state = 'rejected'").rowcount


def drain(store: Store, settings: Settings, *, cluster: Cluster | None = None,
          batch: int = DRAIN_BATCH, max_batches: int | None = None) -> DrainReport:
    """Deliver spooled documents until the spool is empty or the cluster stops answering.

    Never raises for cluster trouble: the report says what happened."""
    conn = store.conn
    report = DrainReport()
    cfg = settings.elasticsearch
    if not cfg.enabled:
        report.pending = spool_depth(conn)
        report.error = "elasticsearch is not configured"
        return report
    own = cluster is None
    try:
        if cluster is None:
            cluster = connect(cfg)
        if spool_depth(conn):
            for note in ensure_installed(cluster):
                if note not in _NOTED:  # once per process, not on every drain
                    _NOTED.add(note)
                    log.info("elasticsearch: %s", note)
        rounds = 0
        after = 0
        while max_batches is None or rounds < max_batches:
            rows = conn.execute(
                "SELECT id, index_suffix, doc_id, op, body FROM es_spool"
                " WHERE state = 'pending' AND id > ? ORDER BY id LIMIT ?", (after, batch),
            ).fetchall()
            if not rows:
                break
            rounds += 1
            after = rows[-1][0]
            if not _deliver(store, cluster, rows, report):
                break
    except SinkError as exc:
        report.error = str(exc)
        report.unreachable = exc.unreachable
    except Exception as exc:  # a client bug must not take the daemon down
        log.exception("elasticsearch drain failed")
        report.error = f"elasticsearch drain failed: {type(exc).__name__}: {redact(str(exc))}"
    finally:
        if own and cluster is not None:
            cluster.close()
    report.pending = spool_depth(conn)
    if report.error:
        log.warning("elasticsearch: %s; %d documents stay spooled", report.error, report.pending)
    return report


def _deliver(store: Store, cluster: Cluster, rows: list[Row],
             report: DrainReport) -> bool:
    """One bulk round; False when the cluster stopped answering (stop draining)."""
    cfg = cluster.config
    prefix = cfg.index_prefix
    by_key: dict[tuple[str, str, str], int] = {}
    sent: dict[int, str] = {}  # row id -> the body read (an update's may change meanwhile)
    actions = []
    now = datetime.now(UTC).isoformat()
    ingested = ecs.iso(datetime.now(UTC))
    for row_id, suffix, doc_id, op, body in rows:
        index = f"{prefix}-{suffix}"
        by_key[(op, index, doc_id)] = row_id
        sent[row_id] = body
        if op == "update":  # {"doc": ...} beside the metadata (a string _source would be
            # taken for source filtering by the client helpers)
            actions.append({"_op_type": op, "_index": index, "_id": doc_id, **json.loads(body)})
        else:
            actions.append({"_op_type": op, "_index": index, "_id": doc_id,
                            "_source": _with_ingested(body, ingested)})
    done: list[tuple[int, str]] = []  # (id, body): delete only what was sent
    failed: list[tuple[str, str, str, int]] = []  # (state, error, now, id)
    report.attempted += len(rows)
    alive = True
    try:
        for ok, item in cluster.streaming_bulk(
                actions, chunk_size=cfg.chunk_size, max_retries=cfg.max_retries,
                initial_backoff=cfg.initial_backoff, max_backoff=cfg.max_backoff):
            op, info = next(iter(item.items()))
            row_id = by_key.get((op, info.get("_index", ""), str(info.get("_id", ""))))
            if row_id is None:
                continue
            status = int(info.get("status") or 0)
            if ok and 200 <= status < 300:
                report.delivered += 1
                done.append((row_id, sent[row_id]))
            elif status == 409 and op == "create":
                report.duplicates += 1
                done.append((row_id, sent[row_id]))
            elif status == 404 and op == "update" and not _create_waiting(store, row_id):
                report.missing += 1
                done.append((row_id, sent[row_id]))
                log.warning("elasticsearch: %s/%s: re-sighting not recorded, the hit document"
                            " is no longer in the index", info.get("_index"), info.get("_id"))
            else:
                reason = _item_error(info)
                if len(report.errors) < 20:
                    report.errors.append(f"{info.get('_index')}/{info.get('_id')}: {reason}")
                # no status, or one worth asking again; 404: its create waits; 409 on an
                # update: a concurrent update, try again
                if (not status or retryable_status(status) or status == 404
                        or (op, status) == ("update", 409)):
                    report.retry_later += 1
                    failed.append(("pending", reason, now, row_id))
                else:
                    report.rejected += 1
                    failed.append(("rejected", reason, now, row_id))
    except Exception as exc:
        err = cluster.error(exc, "bulk")
        report.error = str(err)
        report.unreachable = err.unreachable
        alive = False
    finally:
        with store.transaction() as tx:
            # a re-sighting may have replaced a waiting update's body since it was read
            # (another process): that newer body stays for the next drain
            tx.executemany("DELETE FROM es_spool WHERE id = ? AND body = ?", done)
            tx.executemany("UPDATE es_spool SET state = ?, last_error = ?, last_attempt_at = ?,"
                             " attempts = attempts + 1 WHERE id = ?", failed)
    # items left pending after 429/5xx: stop this drain, the daemon calls again later
    return alive and not any(state == "pending" for state, *_ in failed)


_EVENT = '"event":{'


def _with_ingested(body: str, ingested: str) -> str:
    """``body`` with ``event.ingested``. Our documents are compact JSON whose first
    ``"event":{`` is the top-level object's (a quote inside a string value is escaped, so
    the text cannot occur there): inserting the field there spares a parse and a dump per
    document on the delivery path. Anything else is parsed."""
    at = body.find(_EVENT)
    if at > 0 and '"ingested"' not in body:
        at += len(_EVENT)
        sep = "" if body[at] == "}" else ","
        return f'{body[:at]}"ingested":"{ingested}"{sep}{body[at:]}'
    doc = json.loads(body)
    doc.setdefault("event", {})["ingested"] = ingested
    return dumps(doc)


def _create_waiting(store: Store, update_row: int) -> bool:
    """Is the create of the document this update row targets still in the spool?"""
    return store.conn.execute(
        "SELECT 1 FROM es_spool c JOIN es_spool u ON c.index_suffix = u.index_suffix"
        " AND c.doc_id = u.doc_id WHERE u.id = ? AND c.op = 'create' AND c.state = 'pending'",
        (update_row,)).fetchone() is not None


def _item_error(info: dict[str, Any]) -> str:
    err = info.get("error")
    if isinstance(err, dict):
        text = f"{err.get('type', 'error')}: {err.get('reason', '')}"
        cause = err.get("caused_by")
        if isinstance(cause, dict) and cause.get("reason"):
            text += f" ({cause.get('reason')})"
    else:
        text = str(err or f"status {info.get('status')}")
    # reasons may quote the offending value ("Preview of field's value: ..."): mask it
    return (redact(" ".join(text.split())) or "")[:500]
