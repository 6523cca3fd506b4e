"""Source-health alerts: one alert when a source becomes unhealthy (it keeps
failing or finds nothing, as recorded by the crawler in ``source_health``)
and one recovery notice when it is healthy again.

What was last announced per source is remembered in the outbox's own
``alert_health`` table, so calling this every minute announces each change
exactly once. A source first seen healthy is recorded silently.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import TYPE_CHECKING

from leaksentry.store import outbox
from leaksentry.store.runs import all_health
from pipelines.alerts.content import health_payload
from pipelines.model import utcnow

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from leaksentry.store import Store

log = logging.getLogger("leaksentry.alerts")


def health_channels(settings: Settings) -> list[str]:
    cfg = settings.alerts
    if not cfg.enabled:
        return []
    if cfg.health_channels is not None:
        return list(cfg.health_channels)
    return [c.name for c in cfg.channels]


def plan_health_alerts(store: Store, settings: Settings, now: datetime | None = None) -> int:
    """Enqueue alerts for sources whose health changed since last announced; returns
    how many alerts were written."""
    now = now or utcnow()
    channels = health_channels(settings)
    written = 0
    with store.transaction() as tx:
        announced = outbox.health_announced(tx)
        for h in all_health(tx):
            before = announced.get(h.source)
            if before is None and h.healthy:
                outbox.set_health_announced(tx, h.source, True, now, None)
                continue
            if before == h.healthy:
                continue
            recovered = h.healthy
            payload = health_payload(h, recovered=recovered)
            alert_id = None
            if channels:
                alert_id = outbox.insert_alert(
                    tx, kind=payload["kind"], severity=payload["severity"], created_at=now,
                    payload=payload, source=h.source)
                for name in channels:
                    outbox.insert_delivery(tx, alert_id, name, state="pending", now=now)
                written += 1
                log.info("alert %d: source %r %s", alert_id, h.source,
                         "recovered" if recovered else "unhealthy")
            outbox.set_health_announced(tx, h.source, h.healthy, now, alert_id)
    return written
