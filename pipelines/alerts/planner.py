"""Deciding which alerts a stored hit causes, inside the hit's own transaction.

Rules, in order:

1. ``stored.new`` is False (the store had this sha256 at this URL): nothing.
2. Severity below ``[alerts] min_severity``, or no rule routes it anywhere: nothing.
3. The same document (sha256) or the same set of records (``records_key``) was
   alerted within the dedupe window: a *re-sighting* (kind ``re-sighting``,
   severity ``low``; the document's own severity is the payload's
   ``hit_severity``) in the first alert's thread (a short low-priority notice,
   or a digest line), never a new page.
4. Severities listed in ``digest_severities`` wait for their channel's digest.
5. A channel over its rate limit gets the alert in its digest instead.

Everything else becomes a ``pending`` delivery per channel. The worker sends
it later; writing it here, in the same transaction, is what makes a crash
unable to keep the hit and lose the alert.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from leaksentry.store import outbox
from leaksentry.store.engine import Connection
from pipelines.alerts.content import hit_payload
from pipelines.model import Finding, StoredHit, severity_rank, utcnow

if TYPE_CHECKING:
    from leaksentry.config import Settings

log = logging.getLogger("leaksentry.alerts")


def route(finding: Finding, settings: Settings) -> list[str]:
    """Channel names a hit goes to, in config order."""
    cfg = settings.alerts
    sev = finding.result.severity
    if not cfg.enabled or sev not in ("low", "medium", "high", "critical"):
        return []
    if severity_rank(sev) < severity_rank(cfg.min_severity):
        return []
    if not cfg.rules:
        return [c.name for c in cfg.channels]
    kinds = {m.kind for m in finding.result.matches}
    kinds |= {k for k, n in finding.result.unmatched_valid.items() if n}
    wanted: set[str] = set()
    for rule in cfg.rules:
        if severity_rank(sev) < severity_rank(rule.min_severity):
            continue
        if rule.sources and finding.source not in rule.sources:
            continue
        if rule.kinds and not kinds & set(rule.kinds):
            continue
        wanted.update(rule.channels)
    return [c.name for c in cfg.channels if c.name in wanted]


def _aware(dt: datetime) -> datetime:
    return dt if dt.tzinfo else dt.replace(tzinfo=UTC)


def plan_alerts(tx: Connection, finding: Finding, stored: StoredHit,
                settings: Settings, *, now: datetime | None = None) -> None:
    """Write the alert and its deliveries for one stored hit (see the module doc).

    ``now`` defaults to the time the document was fetched, so planning is a pure
    function of the finding and the outbox (tests pass their own clock).
    """
    if not stored.new:
        return
    channels = route(finding, settings)
    if not channels:
        return
    cfg = settings.alerts
    now = _aware(now or finding.fetched_at or utcnow())
    root = outbox.find_thread_root(
        tx, sha256=finding.hit_sha256, records_key=stored.records_key or None,
        since=now - timedelta(seconds=cfg.dedupe_window))
    if root is not None:
        payload = hit_payload(finding, stored, settings, kind=outbox.RESIGHTING,
                              thread_id=root.id)
        alert_id = outbox.insert_alert(
            tx, kind=outbox.RESIGHTING, severity=payload["severity"], created_at=now,
            payload=payload, source=finding.source, sha256=finding.sha256,
            records_key=stored.records_key, hit_id=stored.hit_id, thread_id=root.id)
        batch = cfg.resightings == "digest"
        log.info("alert %d: re-sighting of alert %d on source %r", alert_id, root.id,
                 finding.source)
    else:
        payload = hit_payload(finding, stored, settings)
        alert_id = outbox.insert_alert(
            tx, kind=outbox.HIT, severity=finding.result.severity, created_at=now, payload=payload,
            source=finding.source, sha256=finding.sha256, records_key=stored.records_key,
            hit_id=stored.hit_id)
        batch = finding.result.severity in cfg.digest_severities
        log.info("alert %d: %s hit on source %r, %d record(s)", alert_id,
                 finding.result.severity, finding.source, finding.result.matched_records)
    for name in channels:
        state = "batched" if batch or _over_rate_limit(tx, settings, name, now) else "pending"
        outbox.insert_delivery(tx, alert_id, name, state=state, now=now)


def _over_rate_limit(tx: Connection, settings: Settings, channel: str,
                     now: datetime) -> bool:
    ch = settings.alerts.channel(channel)
    if not ch.rate_limit:
        return False
    sent = outbox.channel_sent_since(tx, channel, now - timedelta(seconds=ch.rate_window))
    if sent >= ch.rate_limit:
        log.warning("channel %r is over its rate limit (%d per %ds): alert goes to its digest",
                    channel, ch.rate_limit, int(ch.rate_window))
        return True
    return False
