"""The Elasticsearch documents: one hit document per leaked upload, one
coverage document per scan.

Why one hit document per *document* (with the list of matched records) and
not one per (document, record): an analyst's unit of work is the upload —
"this paste/file on that site holds our patients" — and that is what Kibana
should count, sort by severity and alert on. Per-record documents would turn
one 56,000-patient export into 56,000 near-identical rows, drown every
"latest hits" table and make "hits by source" count patients instead of
leaks. The questions per-record documents answer are still answered:
``leaksentry.record_refs`` is a keyword array holding every matched record,
so ``leaksentry.record_refs : "1234"`` finds every upload that exposed
record 1234, and ``sum(leaksentry.matched_records)`` gives the records total.

Nothing here holds plaintext identifiers or raw content: matches carry
masked forms and register references, snippets are masked by the matcher,
and every free-text field from a stranger (URL, file name, location, error,
snippet) passes through the redaction policy (:func:`leaksentry.redaction.redact`) again.

What is indexed and what is only shown: the fields analysts filter and
aggregate on (time, severity, source, domain, file, record refs, records
total, kinds, status, exposed fields and categories) are mapped; the per-match
list (masked identifier, record ref, location, count) and minor counters live under
``leaksentry.detail``, an object with ``enabled: false`` — kept in ``_source``
so Discover shows it, but not indexed. Indexing every match of every hit made
each document several times more expensive to index for fields nobody
searches (a masked ``A12****(3)`` matches thousands of people); who is
affected is answered by ``leaksentry.record_refs``.
"""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit

from leaksentry import __version__
from leaksentry.redaction import redact
from pipelines.model import Finding, StoredHit, severity_rank

HITS = "hits"
DOCUMENTS = "documents"
DATASET = {HITS: "leaksentry.hit", DOCUMENTS: "leaksentry.document"}
RULE_ID = "leaksentry-register-match"
RULE_NAME = "Register identifiers found in a public upload"
#: the ECS version these documents follow (ECS requires ``ecs.version`` in every event)
ECS_VERSION = "8.11.0"
#: match entries (masked id + location) listed per hit document; ``record_refs`` is always
#: complete, and the local store keeps every match
MAX_MATCHES = 1000
MAX_SNIPPETS = 5


def _iso(dt: datetime) -> str:
    if dt.tzinfo is None:
        dt = dt.replace(tzinfo=UTC)
    return dt.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


#: public name: the spool stamps ``event.ingested`` in the same format
iso = _iso


def month_index(prefix: str, kind: str, when: datetime) -> str:
    """``leaksentry-hits-2026.11``: monthly indices behind the ``<prefix>-<kind>`` alias."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return f"{prefix}-{kind}-{when.astimezone(UTC):%Y.%m}"


def alias(prefix: str, kind: str) -> str:
    return f"{prefix}-{kind}"


def hit_id(finding: Finding) -> str:
    """One hit per (content, URL): a re-sent batch or a re-sighting never duplicates."""
    return hashlib.sha256(f"hit\n{finding.sha256}\n{finding.url}".encode()).hexdigest()[:40]


def document_id(finding: Finding) -> str:
    """One coverage document per scan (same content re-fetched later = another scan)."""
    key = f"doc\n{finding.sha256}\n{finding.url}\n{_iso(finding.fetched_at)}"
    return hashlib.sha256(key.encode()).hexdigest()[:40]


def records_key(record_refs: list[str], sha256: str) -> str:
    """Stable hash of the sorted, distinct record refs; ``doc:<sha256>`` when there are none
    (a hit of unmatched-but-valid identifiers only), so such hits never dedupe together."""
    refs = sorted(set(record_refs))
    if not refs:
        return "doc:" + sha256[:32]
    return hashlib.sha256("\n".join(refs).encode()).hexdigest()[:32]


def domain_of(url: str) -> str | None:
    try:
        host = urlsplit(url).hostname
    except ValueError:
        return None
    return host.lower() if host else None


#: skipped entries listed per document (the scan keeps at most 100 itself)
MAX_SKIPPED = 100


def skipped_list(finding: Finding) -> list[dict[str, str]]:
    """What could not be read, scrubbed again (names are stranger-controlled)."""
    return [{"where": redact(s.where) or "", "status": s.status, "error": redact(s.error) or ""}
            for s in finding.result.skipped[:MAX_SKIPPED]]


def _file(f: Finding) -> dict[str, Any]:
    out: dict[str, Any] = {"size": f.size, "hash": {"sha256": f.sha256}}
    if f.filename:
        out["name"] = redact(f.filename)
    if f.content_type:
        out["mime_type"] = f.content_type.split(";", 1)[0].strip().lower()
    return out


def _url(f: Finding) -> dict[str, Any] | None:
    domain = domain_of(f.url)
    if domain is None:
        return None  # a local path from `scan`: not a URL
    return {"full": redact(f.url), "domain": domain}


def _observer(version: str) -> dict[str, Any]:
    return {"type": "poller", "product": "leaksentry", "vendor": "leaksentry",
            "version": version}


def _version() -> str:
    return __version__


def hit_document(finding: Finding, stored: StoredHit | None, *, max_matches: int = MAX_MATCHES,
                 now: datetime | None = None) -> dict[str, Any]:
    """The ECS hit document (REFERENCE.md "Elasticsearch and Kibana conventions")."""
    r = finding.result
    now = now or datetime.now(UTC)
    first_seen = stored.first_seen if stored else finding.fetched_at
    refs = sorted(set(r.record_refs), key=ref_order)
    kinds = sorted({m.kind for m in r.matches})
    matches = [
        {"kind": m.kind, "masked": redact(m.masked), "record_ref": m.record_ref,
         "count": m.count, "where": redact(m.where)}
        for m in r.matches[:max_matches]
    ]
    url = _url(finding)
    domain = url["domain"] if url else None
    summary = (f"{r.severity}: {r.matched_records} register records matched in an upload"
               f" from {finding.source}" + (f" ({domain})" if domain else ""))
    doc: dict[str, Any] = {
        "@timestamp": _iso(first_seen),
        "ecs": {"version": ECS_VERSION},
        "message": summary,
        "event": {
            "kind": "alert",
            "category": ["threat"],
            "type": ["indicator"],
            "severity": severity_rank(r.severity),
            "risk_score": float(r.risk_score),
            "created": _iso(now),
            "dataset": DATASET[HITS],
            "module": "leaksentry",
            "provider": finding.source,
        },
        "file": _file(finding),
        "rule": {"id": RULE_ID, "name": RULE_NAME},
        "observer": _observer(_version()),
        "related": {"hash": sorted({m.digest for m in r.matches[:max_matches] if m.digest})},
        "tags": ["leaksentry", "hit", r.severity],
        "leaksentry": {
            "source": finding.source,
            "item_id": redact(finding.item_id),
            "severity": r.severity,
            "status": r.status,
            "matched_records": r.matched_records,
            "record_refs": refs,
            "records_key": stored.records_key if stored and stored.records_key
            else records_key(refs, finding.hit_sha256),
            "kinds": kinds,
            "unmatched_valid_total": sum(int(v) for v in r.unmatched_valid.values()),
            # kept current by sighting_update() on re-sightings
            "last_seen": _iso(finding.fetched_at),
            "sightings": 1,
            "snippets": [s for s in (redact(x) for x in r.snippets[:MAX_SNIPPETS]) if s],
            "exposed_fields": [f for f in (redact(x) for x in r.exposed_fields) if f],
            "exposed_categories": list(r.exposed_categories),
            "partial": r.partial,
            "skipped": skipped_list(finding),
            # shown, not indexed (``enabled: false``): see the module docstring
            "detail": {
                "matches": matches,
                "matches_total": len(r.matches),
                "matches_truncated": len(r.matches) > max_matches,
                "unmatched_valid": {k: int(v) for k, v in sorted(r.unmatched_valid.items())},
                "record_level_records": len(set(r.record_level_refs)),
                "parts": r.parts,
                "http_status": finding.http_status,
                "hit_id": stored.hit_id if stored else None,
                "first_seen": _iso(first_seen),
                "fetched_at": _iso(finding.fetched_at),
            },
        },
    }
    if stored is not None and stored.evidence is not None:
        doc["leaksentry"]["evidence"] = stored.evidence.to_json()
    if url:
        doc["url"] = url
    else:
        doc["leaksentry"]["path"] = redact(finding.url)
    _drop_none(doc)
    return doc


def document_document(finding: Finding, *, now: datetime | None = None) -> dict[str, Any]:
    """The coverage document: what was scanned, with what outcome (no match details)."""
    r = finding.result
    now = now or datetime.now(UTC)
    url = _url(finding)
    doc: dict[str, Any] = {
        "@timestamp": _iso(finding.fetched_at),
        "ecs": {"version": ECS_VERSION},
        "event": {
            "kind": "event",
            "category": ["file"],
            "type": ["info"],
            "outcome": "success" if r.status == "ok" else "failure",
            "severity": severity_rank(r.severity),
            "created": _iso(now),
            "dataset": DATASET[DOCUMENTS],
            "module": "leaksentry",
            "provider": finding.source,
        },
        "file": _file(finding),
        "observer": _observer(_version()),
        "tags": ["leaksentry", "document"],
        "leaksentry": {
            "source": finding.source,
            "item_id": redact(finding.item_id),
            "status": r.status,
            "error": redact(r.error),
            "severity": r.severity,
            "hit": r.hit,
            "matched_records": r.matched_records,
            "partial": r.partial,
            "skipped": skipped_list(finding),
            "detail": {"http_status": finding.http_status, "parts": r.parts},
        },
    }
    if url:
        doc["url"] = url
    else:
        doc["leaksentry"]["path"] = redact(finding.url)
    _drop_none(doc)
    return doc


def sighting_update(last_seen: datetime, sightings: int) -> dict[str, Any]:
    """The partial update of a hit document on a re-sighting (a bulk ``update`` by its
    ``_id``). Absolute values from the local store, so a re-sent update is harmless.
    ``@timestamp`` and ``event.ingested`` stay: a re-sighting is not a new hit and must not
    fire the critical-hit rule again."""
    return {"doc": {"leaksentry": {"last_seen": _iso(last_seen), "sightings": sightings}}}


def ref_order(ref: str) -> tuple[int, int | str]:
    return (0, int(ref)) if ref.isdigit() else (1, ref)


def _drop_none(d: dict[str, Any]) -> None:
    for k in [k for k, v in d.items() if v is None]:
        del d[k]
    for v in d.values():
        if isinstance(v, dict):
            _drop_none(v)
