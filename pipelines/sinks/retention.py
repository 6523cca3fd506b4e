"""Local retention: forget documents, hits and spooled data older than a cutoff.

The daemon calls :func:`purge` on a schedule with the configured retention, so
the state file does not keep masked hit details forever. Elasticsearch indices
age out by ILM/ISM or :func:`pipelines.sinks.setup.drop_expired_indices`.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from leaksentry.store import Store


def purge(store: Store, older_than_seconds: float) -> int:
    """Delete hits/documents last seen, and spool rows created, before now - older_than.

    Returns the number of rows deleted (hits + documents + spool)."""
    cutoff = (datetime.now(UTC) - timedelta(seconds=older_than_seconds)).isoformat(
        timespec="microseconds")
    with store.transaction() as tx:
        n = tx.execute("DELETE FROM hits WHERE last_seen < ?", (cutoff,)).rowcount
        n += tx.execute("DELETE FROM documents WHERE last_seen < ? AND id NOT IN"
                        " (SELECT document_id FROM hits)", (cutoff,)).rowcount
        n += tx.execute("DELETE FROM es_spool WHERE created_at < ?", (cutoff,)).rowcount
    return n
