"""What an alert says: a JSON-able payload built from a Finding, with masked
identifiers and register references only.

The payload is stored in the outbox when the hit is stored and rendered per
channel at delivery time. It never holds document content: no snippets, no
text, only the metadata the security team needs to act (where, what file,
how many records, which kinds) and the masked forms the matcher produced.
URLs, file names and error lines go through the redaction policy
(:mod:`leaksentry.redaction`), as every other output does.
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from leaksentry.redaction import redact
from leaksentry.store.outbox import RESIGHTING
from pipelines.model import Finding, StoredHit, severity_rank

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from leaksentry.store.runs import SourceHealth

#: where the full list of affected records is, when an alert lists only the first few
FULL_LIST_HINT = "leaksentry hits --json"

def kibana_link(settings: Settings, sha256: str) -> str | None:
    """A Kibana Discover URL filtered on the document's sha256, when Kibana is configured."""
    base = settings.kibana.url
    if not base:
        return None
    query = quote(f"file.hash.sha256:\"{sha256}\"", safe=":")
    return (f"{base.rstrip('/')}/app/discover#/?_g=(time:(from:now-1y,to:now))"
            f"&_a=(query:(language:kuery,query:'{query}'))")


def _iso(dt: datetime | None) -> str | None:
    return dt.isoformat() if dt else None


def hit_payload(finding: Finding, stored: StoredHit, settings: Settings, *,
                kind: str = "hit", thread_id: int | None = None) -> dict[str, Any]:
    r = finding.result
    cfg = settings.alerts
    kinds = sorted({m.kind for m in r.matches} | {k for k, n in r.unmatched_valid.items() if n})
    idents = [
        {"kind": m.kind, "masked": redact(m.masked), "record_ref": m.record_ref,
         "where": redact(m.where)}
        for m in r.matches[: cfg.show_identifiers]
    ]
    refs = list(r.record_refs)
    resighting = kind == RESIGHTING
    payload: dict[str, Any] = {
        "kind": kind,
        # a re-sighting is a low-priority notice, never a second page; what the
        # document itself rates is kept as hit_severity
        "severity": "low" if resighting else r.severity,
        "hit_severity": r.severity,
        "risk_score": r.risk_score,
        "source": finding.source,
        "url": redact(finding.url),
        "filename": redact(finding.filename),
        "content_type": finding.content_type,
        "size": finding.size,
        "sha256": finding.sha256,
        "status": r.status,
        "matched_records": r.matched_records,
        "record_level_records": len(r.record_level_refs),
        "kinds": kinds,
        "identifiers": idents,
        "identifiers_total": len(r.matches),
        "record_refs": refs[: cfg.show_record_refs],
        "record_refs_total": len(refs),
        "full_list": FULL_LIST_HINT,
        "unmatched_valid": {k: n for k, n in sorted(r.unmatched_valid.items()) if n},
        # what the upload exposed (labels and their categories), never its values
        "exposed_fields": [f for f in (redact(x) for x in r.exposed_fields) if f],
        "exposed_categories": list(r.exposed_categories),
        "hit_id": stored.hit_id,
        "first_seen": _iso(stored.first_seen),
        "seen_at": _iso(finding.fetched_at),
        "kibana_url": kibana_link(settings, finding.hit_sha256),
    }
    if stored.evidence is not None:
        payload["evidence"] = stored.evidence.to_json()
    if thread_id is not None:
        payload["thread_id"] = thread_id
    return payload


def digest_payload(channel: str, items: list[dict[str, Any]], start: datetime,
                   end: datetime) -> dict[str, Any]:
    top = max((i["severity"] for i in items), key=severity_rank, default="low")
    return {
        "kind": "digest",
        "severity": top,
        "channel": channel,
        "count": len(items),
        "period_start": _iso(start),
        "period_end": _iso(end),
        "items": items,
        "full_list": FULL_LIST_HINT,
    }


def digest_item(alert_id: int, payload: dict[str, Any]) -> dict[str, Any]:
    keys = ("kind", "severity", "hit_severity", "source", "url", "filename", "sha256",
            "matched_records", "kinds", "exposed_categories", "first_seen", "seen_at",
            "thread_id", "kibana_url")
    return {"alert_id": alert_id, **{k: payload.get(k) for k in keys if k in payload}}


def health_payload(health: SourceHealth, *, recovered: bool) -> dict[str, Any]:
    return {
        "kind": "recovery" if recovered else "health",
        "severity": "low" if recovered else "high",
        "source": health.source,
        "healthy": health.healthy,
        "reason": redact(health.reason),
        "since": health.changed_at,
        "consecutive_errors": health.consecutive_errors,
        "consecutive_empty": health.consecutive_empty,
        "last_error": redact(health.last_error),
        "last_success": health.last_success,
    }


def test_payload(channel: str, now: datetime) -> dict[str, Any]:
    return {
        "kind": "test",
        "severity": "low",
        "channel": channel,
        "source": "leaksentry",
        "sent_at": _iso(now),
        "message": f"Test alert from leaksentry to channel {channel!r}: delivery works.",
    }
