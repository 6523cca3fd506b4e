"""The base spider every source kind builds on, and its shared helpers.

How a spider for a source kind is written::

    class ListingSpider(SourceSpider):
        name = "listing"                       # == the source kind

        async def discover(self):              # async generator of Requests
            yield self.request(self.source.url, self.parse_listing, role="discover")

        def parse_listing(self, response):
            for item_id, url, version in ...:
                yield self.item_request(item_id, url, version=version)
            # the seen filter drops items already processed (same version), items over
            # the run's budget and other shards' items

        # default item callback; override for special bodies
        def parse_item(self, response, item_id, version=None):
            item = self.make_document(response, item_id, version=version)
            if item is not None:                               # None: content unchanged
                yield item

A spider discovers and parses; the rest is wired by ``crawler.settings``:

* which listed items are fetched, re-queued items first: the seen store and shards
  (:class:`crawler.middlewares.seen.SeenFilterMiddleware`, ``self.seen_filter``: the
  spider's writes about items go through it), the ``max_items`` budget
  (``crawler.middlewares.budget``), cluster batches (``crawler.middlewares.dispatch``);
* the source's headers, token and proxy: ``crawler.middlewares.credentials``; the
  crawl's deadline on every download: ``crawler.middlewares.deadline``;
* the counters: ``crawler.stats`` (:mod:`crawler.runstats`); the run record when the
  spider closes: :class:`crawler.runs.RunRecorder`; exceptions in callbacks and the
  pipeline: :class:`crawler.failures.CallbackErrors`;
* document items are scanned and recorded by ``crawler.pipelines``; the item is
  marked processed in the seen store only after it was recorded (nothing lost).
  Items print as ``<document URL item=... sha256=... size=...>``, never their content.

``self.source`` is the :class:`SourceConfig` with ``[crawler]`` defaults filled in.
:meth:`request` builds a Request with a ``role`` ("discover" failures make the run's
outcome "error"; "item" failures re-queue the item with backoff).

Spider classes are registered per kind in ``crawler.runner.SPIDERS``.
"""

from __future__ import annotations

import hashlib
import mimetypes
import posixpath
from collections.abc import AsyncIterator, Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar, TypeVar
from urllib.parse import unquote, urlsplit

import scrapy
from scrapy.http import Request, Response
from twisted.python.failure import Failure

from crawler import runstats
from crawler.failures import classify_failure
from crawler.items import DocumentItem
from crawler.middlewares.budget import ItemBudgetMiddleware
from crawler.middlewares.seen import DISPATCH, LISTED, SeenFilterMiddleware
from crawler.shard import Shard
from crawler.state import StateStore
from leaksentry.config.sources import SourceConfig
from leaksentry.store import seen
from leaksentry.store.db import Store
from pipelines.model import Document


class SourceSpider(scrapy.Spider):
    """One crawl of one configured source. Subclasses set ``name`` to the kind."""

    name = "source"
    #: HTTP statuses the item callback wants to see instead of an errback
    item_statuses: ClassVar[list[int]] = []

    def __init__(self, source: SourceConfig, items: list[dict[str, Any]] | None = None,
                 dispatch: Any = None, **kwargs: Any) -> None:
        super().__init__(name=self.name, **kwargs)
        self.source = source
        #: a part of a cluster run (scheduler.cluster.fanout): the listing hands its items
        #: to ``dispatch`` (batches for the workers); a batch fetches ``items``
        self.items = items
        self.dispatch = dispatch
        self._seen_filter: SeenFilterMiddleware | None = None

    # -- the crawl's components --------------------------------------------------------
    @property
    def seen_filter(self) -> SeenFilterMiddleware:
        if self._seen_filter is None:
            self._seen_filter = _component(self.crawler.get_spider_middleware,
                                           SeenFilterMiddleware)
        return self._seen_filter

    @property
    def store(self) -> Store:
        """The state store (a kind's own state: a feed's ETag, a watched URL's)."""
        return StateStore.of(self.crawler).store

    @property
    def shard(self) -> Shard | None:
        """Set when this crawl is one of several processes of the source (crawler.shard)."""
        return Shard.from_setting(self.settings.getlist("LEAKSENTRY_SHARD"))

    def owns(self, item_id: str) -> bool:
        return self.seen_filter.owns(item_id)

    def want(self, item_id: str, url: str | None = None, version: str | None = None) -> bool:
        """The seen filter's and the budget's decision for an item that arrives without a
        request of its own (a channel message in its listing page)."""
        return self.seen_filter.want(item_id, url, version) and _component(
            self.crawler.get_spider_middleware, ItemBudgetMiddleware).take()

    def count_status(self, key: str, count: int = 1) -> None:
        runstats.count_status(self.crawler.stats, key, count)

    def count_discovered(self, count: int = 1) -> None:
        self.crawler.stats.inc_value(runstats.DISCOVERED, count)

    # -- start -------------------------------------------------------------------
    async def start(self) -> AsyncIterator[Any]:
        if self.items is not None:  # a batch of a cluster run: listed by another process
            for it in self.items:
                yield self.item_request(it["item_id"], it["url"], version=it.get("version"),
                                        filename=it.get("filename"), doc_url=it.get("doc_url"),
                                        listed=False)
            return
        async for req in self.discover():
            yield req

    async def discover(self) -> AsyncIterator[Any]:
        """Yield the discovery requests of this source (listing pages, API pages)."""
        if False:  # pragma: no cover - makes this an async generator
            yield None
        raise NotImplementedError

    def retry_request(self, item: seen.SeenItem) -> Request | None:
        """The request for a re-queued item; ``None`` to skip it."""
        assert item.url
        return self.item_request(item.item_id, item.url, version=item.version)

    # -- requests ----------------------------------------------------------------
    def request(self, url: str, callback: Any, *, role: str = "item",
                item_id: str | None = None, meta: dict[str, Any] | None = None,
                **kwargs: Any) -> Request:
        """A Request with the crawl's error handling; ``role`` says what a failure means."""
        m = {"ls_role": role, "ls_item_id": item_id, **(meta or {})}
        if role == "item" and self.item_statuses:
            m.setdefault("handle_httpstatus_list", list(self.item_statuses))
        kwargs.setdefault("errback", self.on_failure)
        return Request(url, callback=callback, meta=m, **kwargs)

    def item_request(self, item_id: str, url: str, *, version: str | None = None,
                     filename: str | None = None, doc_url: str | None = None,
                     listed: bool = True, **kwargs: Any) -> Request:
        """The request fetching one item's body; lands in :meth:`parse_item`. A
        ``listed`` item is fetched only when the seen filter wants it (or, in a cluster
        run's listing, handed to a batch)."""
        meta = kwargs.pop("meta", None)
        m: dict[str, Any] = {}
        if listed:
            m[LISTED] = (item_id, url, version)
            if not kwargs and not meta:  # a plain GET: another process may fetch it
                m[DISPATCH] = {"item_id": item_id, "url": url, "version": version,
                               "filename": filename, "doc_url": doc_url}
        return self.request(url, self.parse_item, role="item", item_id=item_id,
                            meta={**m, **(meta or {})},
                            cb_kwargs={"item_id": item_id, "version": version,
                                       "filename": filename, "doc_url": doc_url},
                            dont_filter=True, **kwargs)

    def parse_item(self, response: Response, item_id: str, version: str | None = None,
                   filename: str | None = None, doc_url: str | None = None) -> Iterator[Any]:
        item = self.make_document(response, item_id, version=version, filename=filename,
                                  url=doc_url)
        if item is not None:
            yield item

    # -- items ---------------------------------------------------------------------
    def make_document(self, response: Response, item_id: str, *, url: str | None = None,
                      filename: str | None = None, version: str | None = None,
                      content: bytes | None = None,
                      content_type: str | None = None) -> DocumentItem | None:
        """The pipeline item for a fetched body, or ``None`` when this content was
        processed for the item before (the seen state is refreshed)."""
        body = response.body if content is None else content
        stats = self.crawler.stats
        stats.inc_value(runstats.FETCHED)
        sha = hashlib.sha256(body).hexdigest()
        etag = _header(response, "ETag")
        last_modified = _header(response, "Last-Modified")
        state = self.seen_filter.seen_item(item_id)
        if state is not None and state.status == "done" and state.sha256 == sha:
            self.seen_filter.unchanged(item_id, version=version, etag=etag,
                                       last_modified=last_modified)
            return None
        stats.inc_value(runstats.NEW)
        ctype = content_type or _header(response, "Content-Type")
        doc = Document(
            url=url or response.url, source=self.source.name, content=body,
            content_type=ctype, filename=filename or filename_for(response.url, ctype),
            item_id=item_id, http_status=response.status,
        )
        return DocumentItem(document=doc, item_id=item_id, version=version, etag=etag,
                            last_modified=last_modified)

    def not_ready(self, item_id: str, url: str, reason: str,
                  delay: float | None = None) -> None:
        """The site says the item is not ready yet: re-queue it (never dropped)."""
        if delay is None:
            delay = self.settings.getfloat("LEAKSENTRY_NOT_READY_DELAY")
        when = datetime.now(UTC) + timedelta(seconds=delay)
        self.seen_filter.requeue(item_id, url, when, reason)
        self.count_status("not_ready")
        self.logger.info("%s: not ready, re-queued for %s", url, when.isoformat())

    def item_gone(self, item_id: str, url: str, reason: str) -> None:
        """Deleted upstream: recorded, not an error, never retried."""
        self.seen_filter.gone(item_id, reason)
        self.count_status("gone")
        self.logger.info("%s: gone (%s)", url, reason)

    # -- failures ------------------------------------------------------------------
    def source_failed(self, message: str) -> None:
        """The source itself cannot be read: the run's outcome becomes "error"."""
        runstats.source_failed(self.crawler, message)

    def record_error(self, url: str, message: str, *, role: str = "item") -> None:
        runstats.record_error(self.crawler, url, message, role=role)

    def on_failure(self, failure: Failure) -> None:
        """Errback: count, classify, re-queue a failed item with backoff."""
        request = failure.request  # type: ignore[attr-defined]
        key, message = classify_failure(failure)
        if not key.isdigit():  # HTTP statuses are counted when the response arrives
            self.count_status(key)
        role = request.meta.get("ls_role", "item")
        if key == "robots" and role != "discover":
            # the site asks not to: not an error; the item stays pending and is
            # tried again by later runs (robots.txt may change)
            self.logger.info("%s: forbidden by robots.txt", request.url)
            return
        self.record_error(request.url, message, role=role)
        item_id = request.meta.get("ls_item_id")
        if role == "item" and item_id:
            self.requeue_failed(item_id, request.url, message, permanent=key == "blocked")

    def requeue_failed(self, item_id: str, url: str, message: str, *,
                       permanent: bool = False) -> None:
        s = self.settings
        self.seen_filter.requeue_failed(item_id, url, message,
                                        base=s.getfloat("LEAKSENTRY_BACKOFF_BASE"),
                                        cap=s.getfloat("LEAKSENTRY_BACKOFF_CAP"),
                                        permanent=permanent)


_C = TypeVar("_C")


def _component(get: Callable[[type[_C]], _C | None], cls: type[_C]) -> _C:
    """One of the crawl's components (``crawler.settings`` enables them all)."""
    component = get(cls)
    assert component is not None, f"{cls.__name__} is not enabled"
    return component


def _header(response: Response, name: str) -> str | None:
    value = response.headers.get(name)
    return value.decode("latin-1") if value else None


def filename_for(url: str, content_type: str | None = None) -> str:
    """A file name for the extractor to pick a format by: the URL's last path
    segment, with an extension guessed from the content type when it has none."""
    name = unquote(posixpath.basename(urlsplit(url).path)) or "index"
    if "." not in name and content_type:
        ext = mimetypes.guess_extension(content_type.split(";")[0].strip()) or ""
        name += ext
    return name
