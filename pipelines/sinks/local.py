"""The local SQLite sink: always on, the embedded default.

Every scanned document gets a ``documents`` row (coverage), every hit a
``hits`` row holding what the Elasticsearch hit document holds — masked
identifiers, record refs, locations, counts, severity, masked snippets, what
the document exposed (field labels and categories) —
so ``leaksentry hits`` works with no cluster at all.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from leaksentry.redaction import redact
from leaksentry.store.engine import Connection, Row
from pipelines.model import SEVERITIES, Finding, StoredHit, is_severity, severity_rank
from pipelines.sinks.ecs import domain_of, records_key, ref_order, skipped_list


@dataclass(frozen=True, slots=True)
class HitRecord:
    """A hit as `leaksentry hits` and the demo show it (masked only)."""

    hit_id: int
    url: str
    domain: str | None
    source: str
    sha256: str
    size: int
    filename: str | None
    content_type: str | None
    status: str
    severity: str
    risk_score: int
    matched_records: int
    record_level_records: int
    record_refs: list[str]
    records_key: str
    kinds: list[str]
    matches: list[dict[str, Any]]
    unmatched_valid: dict[str, int]
    snippets: list[str]
    exposed_fields: list[str]
    exposed_categories: list[str]
    first_seen: datetime
    last_seen: datetime
    sightings: int

    def to_json(self) -> dict[str, Any]:
        return {
            "hit_id": self.hit_id, "url": self.url, "domain": self.domain,
            "source": self.source, "sha256": self.sha256, "size": self.size,
            "filename": self.filename, "content_type": self.content_type,
            "status": self.status, "severity": self.severity, "risk_score": self.risk_score,
            "matched_records": self.matched_records,
            "record_level_records": self.record_level_records,
            "record_refs": list(self.record_refs), "records_key": self.records_key,
            "kinds": list(self.kinds), "matches": list(self.matches),
            "unmatched_valid": dict(self.unmatched_valid), "snippets": list(self.snippets),
            "exposed_fields": list(self.exposed_fields),
            "exposed_categories": list(self.exposed_categories),
            "first_seen": self.first_seen.isoformat(), "last_seen": self.last_seen.isoformat(),
            "sightings": self.sightings,
        }


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="microseconds")


def _dt(text: str) -> datetime:
    return datetime.fromisoformat(text)


def hit_sightings(tx: Connection, hit_id: int) -> tuple[datetime, int]:
    """(last_seen, sightings) of a stored hit: what a re-sighting's update carries."""
    row = tx.execute("SELECT last_seen, sightings FROM hits WHERE id = ?", (hit_id,)).fetchone()
    return _dt(row[0]), int(row[1])


def save_finding(tx: Connection, finding: Finding) -> StoredHit | None:
    """Record the scanned document and, for a hit, the hit. Call inside a transaction.

    A second sighting of the same (sha256, url) updates ``last_seen`` and
    returns ``StoredHit(new=False)`` with the first sighting's time.
    """
    r = finding.result
    seen = _iso(finding.fetched_at)
    url = redact(finding.url) or ""
    filename = redact(finding.filename)
    error = redact(r.error)
    tx.execute(
        "INSERT INTO documents(url, source, sha256, size, content_type, filename, item_id,"
        " http_status, status, error, severity, matched_records, scanned_at, first_seen,"
        " last_seen, skipped, partial) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
        " ON CONFLICT(sha256, url) DO UPDATE SET status=excluded.status,"
        " error=excluded.error, severity=excluded.severity,"
        " skipped=excluded.skipped, partial=excluded.partial,"
        " matched_records=excluded.matched_records, scanned_at=excluded.scanned_at,"
        " http_status=excluded.http_status, source=excluded.source,"
        " first_seen=CASE WHEN documents.first_seen <= excluded.first_seen"
        "   THEN documents.first_seen ELSE excluded.first_seen END,"
        " last_seen=CASE WHEN documents.last_seen >= excluded.last_seen"
        "   THEN documents.last_seen ELSE excluded.last_seen END,"
        " sightings=documents.sightings + 1",
        (url, finding.source, finding.sha256, finding.size, finding.content_type, filename,
         redact(finding.item_id), finding.http_status, r.status, error, r.severity,
         r.matched_records, seen, seen, seen, json.dumps(skipped_list(finding)),
         int(r.partial)),
    )
    if not r.hit:
        return None
    doc_id = tx.execute("SELECT id FROM documents WHERE sha256 = ? AND url = ?",
                        (finding.sha256, url)).fetchone()[0]
    prev = tx.execute("SELECT id, first_seen, records_key FROM hits WHERE sha256 = ? AND url = ?",
                      (finding.sha256, url)).fetchone()
    if prev is not None:
        tx.execute("UPDATE hits SET last_seen = CASE WHEN last_seen >= ? THEN last_seen"
                   " ELSE ? END, sightings = sightings + 1 WHERE id = ?",
                   (seen, seen, prev["id"]))
        return StoredHit(hit_id=prev["id"], new=False, first_seen=_dt(prev["first_seen"]),
                         records_key=prev["records_key"])
    key = records_key(r.record_refs, finding.hit_sha256)
    matches = [{"kind": m.kind, "masked": redact(m.masked), "record_ref": m.record_ref,
                "count": m.count, "where": redact(m.where)} for m in r.matches]
    row = tx.execute(
        "INSERT INTO hits(document_id, url, domain, source, sha256, size, content_type, filename,"
        " item_id, status, severity, severity_rank, risk_score, matched_records,"
        " record_level_records, record_refs, records_key, kinds, matches, unmatched_valid,"
        " snippets, exposed_fields, exposed_categories, parts, first_seen, last_seen)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?) RETURNING id",
        (doc_id, url, domain_of(finding.url), finding.source, finding.sha256, finding.size,
         finding.content_type, filename, redact(finding.item_id), r.status, r.severity,
         severity_rank(r.severity), int(r.risk_score), r.matched_records,
         len(set(r.record_level_refs)), json.dumps(sorted(set(r.record_refs), key=ref_order)), key,
         json.dumps(sorted({m.kind for m in r.matches})), json.dumps(matches),
         json.dumps(dict(r.unmatched_valid), sort_keys=True),
         json.dumps([redact(s) for s in r.snippets]),
         json.dumps([redact(x) for x in r.exposed_fields], ensure_ascii=False),
         json.dumps(list(r.exposed_categories)), r.parts, seen, seen),
    ).fetchone()
    hit_id = int(row[0])
    return StoredHit(hit_id=hit_id, new=True, first_seen=_dt(seen), records_key=key)


def _record(row: Row) -> HitRecord:
    return HitRecord(
        # through the policy again: rows written before it (or by an older version)
        hit_id=row["id"], url=redact(row["url"]) or "", domain=row["domain"],
        source=row["source"], sha256=row["sha256"], size=row["size"],
        filename=redact(row["filename"]),
        content_type=row["content_type"], status=row["status"], severity=row["severity"],
        risk_score=row["risk_score"], matched_records=row["matched_records"],
        record_level_records=row["record_level_records"],
        record_refs=json.loads(row["record_refs"]), records_key=row["records_key"],
        kinds=json.loads(row["kinds"]), matches=json.loads(row["matches"]),
        unmatched_valid=json.loads(row["unmatched_valid"]),
        snippets=json.loads(row["snippets"]),
        exposed_fields=json.loads(row["exposed_fields"]),
        exposed_categories=json.loads(row["exposed_categories"]),
        first_seen=_dt(row["first_seen"]),
        last_seen=_dt(row["last_seen"]), sightings=row["sightings"],
    )


def query_hits(conn: Connection, since: datetime | None = None,
               min_severity: str | None = None, source: str | None = None,
               limit: int = 100) -> list[HitRecord]:
    """Hits seen (first or again) since ``since``, at least ``min_severity``, newest first."""
    where: list[str] = []
    args: list[str | int] = []
    if since is not None:
        where.append("last_seen >= ?")
        args.append(_iso(since))
    if min_severity is not None:
        if not is_severity(min_severity):
            raise ValueError(f"unknown severity {min_severity!r} (one of {', '.join(SEVERITIES)})")
        where.append("severity_rank >= ?")
        args.append(severity_rank(min_severity))
    if source is not None:
        where.append("source = ?")
        args.append(source)
    sql = "SELECT * FROM hits"
    if where:
        sql += " WHERE " + " AND ".join(where)
    sql += " ORDER BY last_seen DESC, id DESC LIMIT ?"
    args.append(int(limit))
    return [_record(r) for r in conn.execute(sql, args)]


def count_documents(conn: Connection) -> int:
    return int(conn.execute("SELECT count(*) FROM documents").fetchone()[0])
