"""Recording a scanned document: local store, Elasticsearch spool and alert
outbox in ONE transaction, so a crash can never keep a hit and lose its alert
(or the reverse). The crawler's item pipeline, `scan --index` and the demo
all come through here.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from pipelines.alerts.planner import plan_alerts
from pipelines.model import Finding, StoredHit
from pipelines.sinks.local import save_finding
from pipelines.sinks.spool import enqueue_finding

if TYPE_CHECKING:
    from leaksentry.config import Settings
    from leaksentry.store import Store
    from pipelines.sinks.vault import Vault


def record_finding(store: Store, finding: Finding, settings: Settings, *,
                   vault: Vault | None = None,
                   content: Callable[[], bytes | None] | None = None) -> StoredHit | None:
    """Store the document (always), keep an encrypted copy of a hit's document in the
    evidence vault (when configured), spool it for Elasticsearch (when configured) and
    plan its alerts (when it is a hit). Returns the stored hit, if any.

    ``content`` gives the document's bytes; it is called only for a hit the vault keeps
    (``scan`` then reads the file again, once, and None means it changed meanwhile)."""
    with store.transaction() as tx:
        if finding.result.hit:  # its alert planning reads before it writes: one at a time
            tx.lock_writes()
        stored = save_finding(tx, finding)
        if stored is not None and vault is not None and content is not None \
                and vault.wants(finding) and (data := content()) is not None:
            stored = dataclasses.replace(
                stored, evidence=vault.keep(tx, stored.hit_id, data, finding))
        if settings.elasticsearch.enabled:
            enqueue_finding(tx, finding, stored)
        if stored is not None:
            plan_alerts(tx, finding, stored, settings)
    return stored
