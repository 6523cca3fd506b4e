"""Recording a scanned document: local store, Elasticsearch spool and alert
outbox in ONE transaction, so a crash can never keep a hit and lose its alert
(or the reverse). The crawler's item pipeline, `scan --index` and the demo
all come through here.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pipelines.model import Finding, StoredHit

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from leaksentry.store import Store


def record_finding(store: Store, finding: Finding, settings: Settings) -> StoredHit | None:
    """Store the document (always), spool it for Elasticsearch (when configured)
    and plan its alerts (when it is a hit). Returns the stored hit, if any."""
    from pipelines.alerts.planner import plan_alerts
    from pipelines.sinks.local import save_finding
    from pipelines.sinks.spool import enqueue_finding

    with store.transaction() as tx:
        stored = save_finding(tx, finding)
        if settings.elasticsearch.enabled:
            enqueue_finding(tx, finding, stored)
        if stored is not None:
            plan_alerts(tx, finding, stored, settings)
    return stored
