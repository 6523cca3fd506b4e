"""The item a spider yields for the pipeline: a fetched document plus the
seen-store facts the pipeline writes once the document has been recorded."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.model import Document


@dataclass(slots=True)
class DocumentItem:
    document: Document
    item_id: str
    version: str | None = None  # listing-side version (updated_at, ETag, size+date)
    etag: str | None = None
    last_modified: str | None = None
