"""State store component `hits`: every scanned document, and the hits among them.

``documents`` has one row per (url, sha256): what was covered, with its scan
status and first/last sighting. ``hits`` has one row per document that hit,
holding everything the Elasticsearch hit document holds (masked identifiers,
record refs, locations, counts, severity, masked snippets, exposed fields and
categories) so the embedded
default needs no cluster. Written by :mod:`pipelines.sinks.local`.
"""

from __future__ import annotations

COMPONENT = "hits"
MIGRATIONS: list[str] = [
    """
    CREATE TABLE documents (
        id INTEGER PRIMARY KEY,
        url TEXT NOT NULL,
        source TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT,
        filename TEXT,
        item_id TEXT,
        http_status INTEGER,
        status TEXT NOT NULL,
        error TEXT,
        severity TEXT NOT NULL,
        matched_records INTEGER NOT NULL DEFAULT 0,
        scanned_at TEXT NOT NULL,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        sightings INTEGER NOT NULL DEFAULT 1,
        UNIQUE (sha256, url)
    );
    CREATE INDEX documents_last_seen ON documents(last_seen);
    CREATE INDEX documents_source ON documents(source, last_seen);
    CREATE TABLE hits (
        id INTEGER PRIMARY KEY,
        document_id INTEGER NOT NULL REFERENCES documents(id) ON DELETE CASCADE,
        url TEXT NOT NULL,
        domain TEXT,
        source TEXT NOT NULL,
        sha256 TEXT NOT NULL,
        size INTEGER NOT NULL,
        content_type TEXT,
        filename TEXT,
        item_id TEXT,
        status TEXT NOT NULL,
        severity TEXT NOT NULL,
        severity_rank INTEGER NOT NULL,
        risk_score INTEGER NOT NULL DEFAULT 0,
        matched_records INTEGER NOT NULL DEFAULT 0,
        record_level_records INTEGER NOT NULL DEFAULT 0,
        record_refs TEXT NOT NULL DEFAULT '[]',
        records_key TEXT NOT NULL,
        kinds TEXT NOT NULL DEFAULT '[]',
        matches TEXT NOT NULL DEFAULT '[]',
        unmatched_valid TEXT NOT NULL DEFAULT '{}',
        snippets TEXT NOT NULL DEFAULT '[]',
        parts INTEGER NOT NULL DEFAULT 0,
        first_seen TEXT NOT NULL,
        last_seen TEXT NOT NULL,
        sightings INTEGER NOT NULL DEFAULT 1,
        UNIQUE (sha256, url)
    );
    CREATE INDEX hits_first_seen ON hits(first_seen);
    CREATE INDEX hits_last_seen ON hits(last_seen);
    CREATE INDEX hits_source ON hits(source, first_seen);
    CREATE INDEX hits_records_key ON hits(records_key);
    """,
    # 2: what each hit exposed (field labels and their categories), JSON lists
    """
    ALTER TABLE hits ADD COLUMN exposed_fields TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE hits ADD COLUMN exposed_categories TEXT NOT NULL DEFAULT '[]';
    """,
    # 3: content that could not be read (no silent misses): JSON [{where, status, error}]
    """
    ALTER TABLE documents ADD COLUMN skipped TEXT NOT NULL DEFAULT '[]';
    ALTER TABLE documents ADD COLUMN partial INTEGER NOT NULL DEFAULT 0;
    """,
]
