"""Item pipeline: each fetched document is extracted, matched and recorded
(local store, Elasticsearch spool, alert outbox: ``pipelines.flow.record_finding``),
and marked processed in the seen store in the same transaction: a crash before it
means the document is fetched and processed again, never lost.

Scanning runs in a worker thread (``asyncio.to_thread``) so a large document
does not stall the downloads of the rest of the crawl.

The processor is pluggable (Scrapy setting ``LEAKSENTRY_PROCESSOR``, a dotted path to
a class built with ``from_crawler``; ``leaksentry crawl -s LEAKSENTRY_PROCESSOR=...``):
:class:`ScanProcessor` (default) scans and records; :class:`DocLogProcessor` only
appends document metadata (URL, item id, sha256, size — never content) to the JSON
Lines file named by the ``LEAKSENTRY_DOCLOG`` setting; tests and the crawl benchmark's
fetch-only baseline use it.
"""

from __future__ import annotations

import asyncio
import json
import queue
import threading
from collections.abc import Callable
from typing import Any, Protocol

from scrapy.crawler import Crawler
from scrapy.exceptions import DropItem
from scrapy.utils.misc import load_object

from crawler import runstats
from crawler.items import DocumentItem
from crawler.logformat import one_line
from crawler.state import StateStore
from leaksentry.config import Settings
from leaksentry.store import seen
from leaksentry.store.db import Store
from leaksentry.store.engine import Connection
from leaksentry.store.failures import storage_error
from pipelines.alerts.wake import wake
from pipelines.flow import record_finding
from pipelines.match import Matcher
from pipelines.model import Document
from pipelines.process import DocumentScanner
from pipelines.sinks.vault import Vault


class Processor(Protocol):
    """Turns one document into a recorded result; returns True for a hit.

    ``mark_done(conn)`` records the item as processed in the seen store; call it
    in the same transaction that records the result, so both or neither happen."""

    def __call__(self, doc: Document, mark_done: Callable[[Connection], None]
                 ) -> bool: ...


class ScanProcessor:
    """Extract + match (``pipelines.process.DocumentScanner``: a stoppable worker
    per scanner) + record (``pipelines.flow.record_finding``).

    A DocumentScanner serves one document at a time, so a small pool of them
    (``[crawler] scan_workers``) lets that many documents be scanned at once."""

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ScanProcessor:
        app = crawler.settings.get("LEAKSENTRY_APP_CONFIG")
        if not isinstance(app, Settings):
            raise ValueError("ScanProcessor needs LEAKSENTRY_APP_CONFIG (the leaksentry"
                                " config)")
        return cls(app, StateStore.of(crawler).store)

    def __init__(self, app: Settings, store: Store) -> None:
        self.app = app
        self.store = store
        self.vault = Vault.from_settings(app)
        self.matcher = Matcher.from_config(app.matching)
        passwords = tuple(getattr(app.extract, "passwords", ()) or ())
        self.pool: queue.Queue[Any] = queue.Queue()
        self.scanners = [DocumentScanner(self.matcher, app.extract, passwords)
                         for _ in range(max(1, app.crawler.scan_workers))]
        for scanner in self.scanners:
            self.pool.put(scanner)
        # one writer at a time: SQLite's busy handler would otherwise make the other
        # pipeline threads sleep-poll for the write lock (ms-long sleeps per item)
        self.write_lock = threading.Lock()

    def __call__(self, doc: Document, mark_done: Callable[[Connection], None]
                 ) -> bool:
        scanner = self.pool.get()
        try:
            finding = scanner.scan(doc)
        finally:
            self.pool.put(scanner)
        # record_finding joins it; a document without a hit is upserts only (PostgreSQL:
        # no store-wide lock, workers commit in parallel), a hit takes the lock first
        with self.write_lock, self.store.transaction(serial=False) as tx:
            stored = record_finding(self.store, finding, self.app, vault=self.vault,
                                    content=lambda: doc.content)
            mark_done(tx)
        if stored is not None and stored.new and finding.result.hit:
            wake()  # committed: the daemon may deliver its alert now
        return bool(finding.result.hit)

    def close(self) -> None:
        for scanner in self.scanners:
            scanner.close()


class DocLogProcessor:
    """Appends ``{"url", "source", "item_id", "sha256", "size", "filename"}`` per document."""

    def __init__(self, path: str, store: Store) -> None:
        self.store = store
        self.path = path
        self.lock = threading.Lock()

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DocLogProcessor:
        path = crawler.settings.get("LEAKSENTRY_DOCLOG")
        if not path:
            raise ValueError("DocLogProcessor needs the LEAKSENTRY_DOCLOG setting (a file path)")
        return cls(path, StateStore.of(crawler).store)

    def __call__(self, doc: Document, mark_done: Callable[[Connection], None]
                 ) -> bool:
        line = json.dumps({"url": doc.url, "source": doc.source, "item_id": doc.item_id,
                           "sha256": doc.sha256, "size": doc.size, "filename": doc.filename})
        with self.lock:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
            mark_done(self.store.conn)
        return False


class DocumentPipeline:
    def __init__(self, crawler: Crawler, processor_path: str) -> None:
        self.crawler = crawler
        self.processor_path = processor_path
        self.processor: Processor | None = None
        self.broken: str | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DocumentPipeline:
        return cls(crawler, crawler.settings.get("LEAKSENTRY_PROCESSOR"))

    def open_spider(self) -> None:
        try:
            self.processor = load_object(self.processor_path).from_crawler(self.crawler)
        except Exception as exc:  # a missing key or fingerprint file: the run errors
            self.broken = f"cannot start the scanner: {one_line(exc)}"
            runstats.source_failed(self.crawler, self.broken)

    def close_spider(self) -> None:
        close = getattr(self.processor, "close", None)
        if close is not None:
            close()

    async def process_item(self, item: Any) -> Any:
        if not isinstance(item, DocumentItem):
            return item
        if self.processor is None:
            # left pending in the seen store: the next run fetches it again
            raise DropItem(self.broken or "no scanner")
        try:
            hit = await asyncio.to_thread(self._process, item)
        except Exception as exc:
            if not storage_error(exc):
                raise
            # a full disk: stop the crawl, the run is an error (the item stays pending)
            state = StateStore.of(self.crawler)
            state.failed(exc)
            raise DropItem(f"not recorded: {state.failure}") from None
        if hit:
            self.crawler.stats.inc_value(runstats.HITS)
        return item

    def _process(self, item: DocumentItem) -> bool:
        assert self.processor is not None
        doc = item.document

        def mark_done(conn: Connection) -> None:
            seen.processed(conn, doc.source, item.item_id, doc.sha256, version=item.version,
                           etag=item.etag, last_modified=item.last_modified)

        return self.processor(doc, mark_done)
