"""Which listed items a crawl fetches: the seen store as a spider middleware.

Spiders yield an item's request with the item's listing facts in its meta
(:data:`LISTED`: id, URL, version; :meth:`crawler.base.SourceSpider.item_request` does
it); this middleware lets it through only when:

* the item belongs to this process (``LEAKSENTRY_SHARD``: a shard fetches the items whose
  id hashes to it);
* it was not requested before in this run, and the seen store says it needs a fetch
  (new, a new version, re-queued and due).

Every owned listed item counts as discovered (``leaksentry/discovered``). What it lets
through then meets the run's budget (:mod:`crawler.middlewares.budget`) and, in a
cluster run's listing, the dispatcher (:mod:`crawler.middlewares.dispatch`).

At start, items the store has re-queued for now ("not ready", transient failures, items
left over by a previous run's budget) are requested first (``spider.retry_request``),
marked :data:`RETRY`.

The seen store is read once per crawl; first sightings are written behind in batches
(every second, per 500, before any other write of this crawl, and when the spider
closes): a crawl of 10,000 files must not cost 10,000 SQLite commits. The spider's own
writes about items (unchanged, re-queued, gone) go through here for that reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware
from twisted.internet import task

from crawler import runstats
from crawler.shard import Shard
from crawler.state import StateStore
from leaksentry.store import seen
from leaksentry.store.db import Store
from leaksentry.store.failures import storage_error

#: request meta: (item id, URL, version) of a listed item; the request is fetched only
#: when this middleware wants the item
LISTED = "ls_listed"
#: request meta: a re-queued item requested at start (already wanted; within the budget)
RETRY = "ls_retry"
#: request meta: the item's entry for a cluster run's dispatcher (a batch may fetch it)
DISPATCH = "ls_dispatch"

#: first sightings buffered at most before they are written
SIGHTINGS_BATCH = 500


class SeenFilterMiddleware(BaseSpiderMiddleware):
    def __init__(self, crawler: Crawler) -> None:
        super().__init__(crawler)
        s = crawler.settings
        self.source: str = s.get("LEAKSENTRY_SOURCE")
        self.shard = Shard.from_setting(s.getlist("LEAKSENTRY_SHARD"))
        self.retries = max(s.getint("LEAKSENTRY_MAX_ITEMS"), 1)  # at most, at start
        self.state = StateStore.of(crawler)
        self.queued: set[str] = set()  # item ids requested in this run
        self._seen: dict[str, seen.SeenItem] | None = None
        self._sightings: list[tuple[str, str | None]] = []
        self._flusher: task.LoopingCall | None = None

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> SeenFilterMiddleware:
        mw = cls(crawler)
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        crawler.signals.connect(mw.spider_closed, signal=signals.spider_closed)
        return mw

    def spider_opened(self) -> None:
        self._flusher = task.LoopingCall(self.flush)
        self._flusher.start(1.0, now=False)

    def spider_closed(self) -> None:
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        self.flush()

    # -- the filter ------------------------------------------------------------------
    async def process_start(self, start: AsyncIterator[Any]) -> AsyncIterator[Any]:
        if self.crawler.stats.get_value(runstats.ERROR) is not None:
            return  # e.g. the scanner could not start: fetch nothing
        spider = self.crawler.spider
        if getattr(spider, "items", None) is None:  # (a cluster batch lists nothing)
            for request in self._retries(spider):
                yield request
        async for o in super().process_start(start):
            yield o

    def _retries(self, spider: Any) -> Iterator[Request]:
        for item in seen.due_retries(self.store.conn, self.source, limit=self.retries):
            if not self.owns(item.item_id):
                continue
            request = spider.retry_request(item)
            if request is not None:
                self.queued.add(item.item_id)
                request.meta[RETRY] = True
                yield request

    def get_processed_request(self, request: Request, response: Response | None
                              ) -> Request | None:
        if LISTED in request.meta and RETRY not in request.meta:
            item_id, url, version = request.meta[LISTED]
            if not self.want(item_id, url, version):
                return None
        return request

    def owns(self, item_id: str) -> bool:
        """Whether this process fetches the item (always, unless the crawl is sharded)."""
        return self.shard is None or self.shard.owns(item_id)

    def want(self, item_id: str, url: str | None = None, version: str | None = None) -> bool:
        """An item was listed: count it, record first-seen, and say whether it needs a
        fetch (once per run: a second listing of it in this run is not wanted again)."""
        if not self.owns(item_id):
            return False
        self.crawler.stats.inc_value(runstats.DISCOVERED)
        if item_id in self.queued:
            return False
        state = self.seen_item(item_id)
        if not seen.needs_fetch(state, version):
            return False
        if state is None or url:
            self._sightings.append((item_id, url))
            if len(self._sightings) >= SIGHTINGS_BATCH:
                self.flush()
        self.queued.add(item_id)
        return True

    # -- the seen store --------------------------------------------------------------
    @property
    def store(self) -> Store:
        return self.state.store

    def seen_item(self, item_id: str) -> seen.SeenItem | None:
        """The item's state as this crawl started (the seen store, read once)."""
        if self._seen is None:
            self._seen = seen.load_source(self.store.conn, self.source)
        return self._seen.get(item_id)

    def flush(self) -> None:
        """Write the buffered first sightings (every second, per 500, before other writes)."""
        if self._sightings and self.state.failure is None:
            batch, self._sightings = self._sightings, []
            try:
                with self.store.transaction() as tx:
                    seen.discovered_many(tx, self.source, batch)
            except Exception as exc:
                if not storage_error(exc):
                    raise
                self.state.failed(exc)  # the items are discovered again next run

    def unchanged(self, item_id: str, *, version: str | None = None, etag: str | None = None,
                  last_modified: str | None = None) -> None:
        self.flush()
        seen.unchanged(self.store.conn, self.source, item_id, version=version, etag=etag,
                       last_modified=last_modified)

    def requeue(self, item_id: str, url: str | None, when: datetime, reason: str, *,
                max_attempts: int = 10) -> None:
        self.flush()
        seen.requeue(self.store.conn, self.source, item_id, url, when, reason,
                     max_attempts=max_attempts)

    def requeue_failed(self, item_id: str, url: str, message: str, *, base: float,
                       cap: float, permanent: bool = False) -> None:
        """A failed item back in the queue: a minute, doubling per failed attempt, at most
        ``cap`` (between runs); a ``permanent`` failure is not tried again."""
        self.flush()
        state = seen.get_item(self.store.conn, self.source, item_id)
        attempts = state.attempts if state else 0
        delay = min(cap, max(base, 60.0) * (2 ** attempts))
        seen.requeue(self.store.conn, self.source, item_id, url,
                     datetime.now(UTC) + timedelta(seconds=delay), message,
                     max_attempts=1 if permanent else 10)

    def gone(self, item_id: str, reason: str) -> None:
        self.flush()
        seen.gone(self.store.conn, self.source, item_id, reason)
