"""Extract and match one document (placeholder: no time limit yet; the
extraction issue runs this where it can be stopped)."""

from __future__ import annotations

from typing import TYPE_CHECKING

from leaksentry.config.extract import ExtractConfig
from pipelines.extract import extract
from pipelines.model import Document, Finding

if TYPE_CHECKING:
    from pipelines.match import Matcher


def scan_document(doc: Document, matcher: Matcher, config: ExtractConfig | None = None,
                  passwords: tuple[str, ...] = ()) -> Finding:
    ex = extract(doc.content, doc.filename or doc.url, config, passwords)
    result = matcher.scan(ex.parts())
    result.status, result.error = ex.status, ex.error
    result.details.update(ex.details)
    return Finding.of(doc, result)
