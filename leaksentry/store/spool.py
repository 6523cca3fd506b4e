"""State store component `spool`: Elasticsearch documents waiting for delivery.

Rows are written in the same transaction as the local store's rows
(:func:`pipelines.flow.record_finding`), so a document is either stored and
spooled or neither. A row leaves the spool when the cluster has it (created,
or 409: it already had it). A row the cluster refuses for good (a mapping
error, say) stays with ``state = 'rejected'`` and its one-line error, for
inspection; only ``pending`` rows count as spool depth.

``op`` is the bulk operation: ``create`` (a whole document, deterministic id)
or ``update`` (a partial update of a hit document already spooled or indexed:
``leaksentry.last_seen``/``sightings`` on a re-sighting). At most one update
per document waits: a newer sighting replaces the body of the waiting one.
"""

from __future__ import annotations

COMPONENT = "spool"
MIGRATIONS: list[str] = [
    """
    CREATE TABLE es_spool (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        -- "<kind>-YYYY.MM": the index name without the configured prefix
        index_suffix TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_attempt_at TEXT,
        UNIQUE (index_suffix, doc_id)
    );
    CREATE INDEX es_spool_state ON es_spool(state, id);
    CREATE INDEX es_spool_created ON es_spool(created_at);
    """,
    # 2: the bulk operation (create / update), one row of each per document
    """
    CREATE TABLE es_spool_v2 (
        id INTEGER PRIMARY KEY,
        kind TEXT NOT NULL,
        index_suffix TEXT NOT NULL,
        doc_id TEXT NOT NULL,
        op TEXT NOT NULL DEFAULT 'create',
        body TEXT NOT NULL,
        created_at TEXT NOT NULL,
        state TEXT NOT NULL DEFAULT 'pending',
        attempts INTEGER NOT NULL DEFAULT 0,
        last_error TEXT,
        last_attempt_at TEXT,
        UNIQUE (index_suffix, doc_id, op)
    );
    INSERT INTO es_spool_v2(id, kind, index_suffix, doc_id, body, created_at, state, attempts,
                            last_error, last_attempt_at)
        SELECT id, kind, index_suffix, doc_id, body, created_at, state, attempts, last_error,
               last_attempt_at FROM es_spool;
    DROP TABLE es_spool;
    ALTER TABLE es_spool_v2 RENAME TO es_spool;
    CREATE INDEX es_spool_state ON es_spool(state, id);
    CREATE INDEX es_spool_created ON es_spool(created_at);
    """,
]
