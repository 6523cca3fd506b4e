"""Which listed items a crawl fetches: the seen store as a spider middleware.

Spiders yield an item's request with the item's listing facts in its meta
(:data:`LISTED`: id, URL, version; :meth:`crawler.base.SourceSpider.item_request` does
it); this middleware lets it through only when:

* the item belongs to this process (``LEAKSENTRY_SHARD``: a shard fetches the items whose
  id hashes to it);
* it was not requested before in this run, and the seen store says it needs a fetch
  (new, a new version, re-queued and due);
* the run's budget (``LEAKSENTRY_MAX_ITEMS``) is not spent: past it the item stays
  pending in the store and the next run fetches it.

Every owned listed item counts as discovered (``leaksentry/discovered``). A part of a
cluster run's listing hands the items it may fetch to the run's dispatcher
(``spider.dispatch``: batches for the workers) instead of fetching them.

At start, items the store has re-queued for now ("not ready", transient failures, items
left over by a previous run's budget) are requested first (``spider.retry_request``).

The seen store is read once per crawl; first sightings are written behind in batches
(every second, per 500, before any other write of this crawl, and when the spider
closes): a crawl of 10,000 files must not cost 10,000 SQLite commits. The spider's own
writes about items (unchanged, re-queued, gone) go through here for that reason.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Request
from twisted.internet import task

from crawler import runstats
from crawler.shard import Shard
from crawler.state import StateStore
from leaksentry.store import seen
from leaksentry.store.db import Store, storage_error

#: request meta: (item id, URL, version) of a listed item; the request is fetched only
#: when this middleware wants the item
LISTED = "ls_listed"
#: request meta: the item's entry for a cluster run's dispatcher (a batch may fetch it)
DISPATCH = "ls_dispatch"

#: first sightings buffered at most before they are written
SIGHTINGS_BATCH = 500


class SeenFilterMiddleware:
    def __init__(self, crawler: Crawler) -> None:
        s = crawler.settings
        self.crawler = crawler
        self.source: str = s.get("LEAKSENTRY_SOURCE")
        self.shard = Shard.from_setting(s.getlist("LEAKSENTRY_SHARD"))
        self.budget = s.getint("LEAKSENTRY_MAX_ITEMS")
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

    @staticmethod
    def of(crawler: Crawler) -> SeenFilterMiddleware:
        mw = crawler.get_spider_middleware(SeenFilterMiddleware)
        assert mw is not None, "crawler.middlewares.seen.SeenFilterMiddleware is not enabled"
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
        async for o in start:
            if (o := self._processed(o)) is not None:
                yield o

    def _retries(self, spider: Any) -> Iterator[Request]:
        dispatching = getattr(spider, "dispatch", None) is not None
        for item in seen.due_retries(self.store.conn, self.source, limit=max(self.budget, 1)):
            if not self.owns(item.item_id):
                continue
            request = spider.retry_request(item)
            if request is not None or dispatching:
                self.budget -= 1
                self.queued.add(item.item_id)
            if request is not None and not self._dispatched(request):
                yield request

    def process_spider_output(self, response: Any, result: Iterable[Any]) -> Iterator[Any]:
        for o in result:
            if (o := self._processed(o)) is not None:
                yield o

    async def process_spider_output_async(self, response: Any, result: AsyncIterator[Any]
                                          ) -> AsyncIterator[Any]:
        async for o in result:
            if (o := self._processed(o)) is not None:
                yield o

    def _processed(self, o: Any) -> Any:
        if isinstance(o, Request) and LISTED in o.meta:
            item_id, url, version = o.meta[LISTED]
            if not self.want(item_id, url, version) or self._dispatched(o):
                return None
        return o

    def _dispatched(self, request: Request) -> bool:
        """Whether a cluster run's dispatcher took the item (False: this process fetches it)."""
        dispatch = getattr(self.crawler.spider, "dispatch", None)
        entry = request.meta.get(DISPATCH)
        return dispatch is not None and entry is not None and bool(dispatch.add(entry))

    def owns(self, item_id: str) -> bool:
        """Whether this process fetches the item (always, unless the crawl is sharded)."""
        return self.shard is None or self.shard.owns(item_id)

    def want(self, item_id: str, url: str | None = None, version: str | None = None) -> bool:
        """An item was listed: count it, record first-seen, and say whether to fetch it."""
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
        if self.budget <= 0:
            return False
        self.budget -= 1
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
