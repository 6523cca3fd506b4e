"""The item a spider yields for the pipeline: a fetched document plus the
seen-store facts the pipeline writes once the document has been recorded."""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.model import Document


@dataclass(slots=True, repr=False)
class DocumentItem:
    document: Document
    item_id: str
    version: str | None = None  # listing-side version (updated_at, ETag, size+date)
    etag: str | None = None
    last_modified: str | None = None

    def __repr__(self) -> str:
        # never the content: Scrapy and our logs print items
        d = self.document
        return f"<document {d.url} item={self.item_id} sha256={d.sha256[:12]} size={d.size}>"
