"""The base spider every source kind builds on, and its shared helpers.

How a spider for a source kind is written::

    class ListingSpider(SourceSpider):
        name = "listing"                       # == the source kind

        async def discover(self):              # async generator of Requests
            yield self.request(self.source.url, self.parse_listing, role="discover")

        def parse_listing(self, response):
            for item_id, url, version in ...:
                if self.want(item_id, url, version):          # seen-store check + counters
                    yield self.item_request(item_id, url, version=version)
            # self.want() is False for items already processed (same version)

        # default item callback; override for special bodies
        def parse_item(self, response, item_id, version=None):
            item = self.make_document(response, item_id, version=version)
            if item is not None:                               # None: content unchanged
                yield item

What the base does for you:

* ``self.source`` (a :class:`SourceConfig` with ``[crawler]`` defaults filled in),
  ``self.app`` (the root :class:`Settings`), ``self.store`` (the state :class:`Store`).
* ``start()`` first re-issues items the store has re-queued for now ("not ready",
  transient failures, items left over by a previous run's ``max_items`` budget), via
  :meth:`retry_request` (override when an item needs more than a GET), then runs
  :meth:`discover`.
* :meth:`request` builds a Request with the source's headers, token (only to the
  source's own host), proxy, errback and ``role`` ("discover" failures make the run's
  outcome "error"; "item" failures re-queue the item with backoff).
* :meth:`want` / :meth:`make_document` / :meth:`not_ready` / :meth:`item_gone` /
  :meth:`source_failed` / :meth:`record_error` keep the run counters and the seen store
  right. Counters become a :class:`RunSummary` recorded in the store when the spider
  closes (``self.summary`` afterwards).
* The seen store is read once per crawl (:meth:`seen_item`); first sightings are
  written behind in batches (:meth:`flush_seen`, every second and at close).
* Every request's ``download_timeout`` is capped by the crawl's own deadline
  (``timeout``), so nothing in flight outlives CLOSESPIDER_TIMEOUT.
* Document items are scanned and recorded by ``crawler.pipelines``; the item is
  marked processed in the seen store only after it was recorded (nothing lost).
  Items print as ``<document URL item=... sha256=... size=...>``, never their content.

Spider classes are registered per kind in ``crawler.runner.SPIDERS``.
"""

from __future__ import annotations

import hashlib
import logging
import mimetypes
import posixpath
import re
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

import scrapy
from scrapy import signals
from scrapy.http import Request, Response
from scrapy.logformatter import LogFormatter
from twisted.python.failure import Failure

from crawler.items import DocumentItem
from crawler.middlewares.credentials import HEADERS_META, ORIGIN_META, origin
from crawler.shard import Shard
from leaksentry.config import Settings
from leaksentry.config.base import resolve_secret
from leaksentry.config.secrets import credential_header
from leaksentry.config.sources import (
    DEFAULT_BACKOFF_BASE,
    DEFAULT_BACKOFF_CAP,
    DEFAULT_CRAWL_TIMEOUT,
    DEFAULT_UNHEALTHY_AFTER,
    SourceConfig,
)
from leaksentry.redaction import redact
from leaksentry.store import seen
from leaksentry.store.db import Store
from leaksentry.store.failures import storage_error, store_failure
from leaksentry.store.runs import record_run
from pipelines.model import Document, RunSummary

log = logging.getLogger(__name__)


def one_line(text: object, limit: int = 300) -> str:
    """Stranger-controlled text (a URL, a page title, a library's message) as one line
    through the redaction policy: identifiers masked, URL userinfo removed, bounded."""
    s = redact(" ".join(str(text).split())) or ""
    return s if len(s) <= limit else s[: limit - 1] + "…"


@dataclass(slots=True)
class RunCounters:
    """What a crawl did, accumulated while it runs."""

    discovered: int = 0
    fetched: int = 0
    new: int = 0
    hits: int = 0
    errors: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    error: str | None = None  # the source-level failure, one line

    def summary(self, source: str, started: datetime, finished: datetime,
                outcome: str) -> RunSummary:
        return RunSummary(source=source, started_at=started, finished_at=finished,
                          outcome=outcome, discovered=self.discovered, fetched=self.fetched,
                          new=self.new, hits=self.hits, errors=self.errors,
                          statuses=dict(sorted(self.statuses.items())), error=self.error)


_MAXSIZE = re.compile(r"max.?size", re.I)


#: what a refused private address tells the operator to do
ALLOW_PRIVATE_HINT = ("(a private/loopback address: set allow_private = true on this source"
                      " if it is meant to be crawled)")


def blocked_message(exc: BaseException, request: Any = None) -> str:
    """The guard's refusal as one line for a caller that prefixes the URL itself (the
    guard's message starts with it: printed once, not twice), naming the setting."""
    text = one_line(exc)
    url = getattr(request, "url", None)
    if url and text.startswith(f"{url}: "):
        text = text[len(url) + 2:]
    if "metadata" in text or "allow_private" in text:
        return text  # cloud metadata: never something to allow
    return f"{text} {ALLOW_PRIVATE_HINT}"


def classify_failure(failure: Failure) -> tuple[str, str]:
    """(status key, one-line message) for a failed request."""
    from scrapy import exceptions as sx
    from scrapy.spidermiddlewares.httperror import HttpError
    from twisted.internet import error as terr
    from twisted.web._newclient import ResponseFailed

    from crawler.middlewares.guard import BlockedAddress

    exc = failure.value
    if isinstance(exc, HttpError):
        from crawler.middlewares.backoff import describe_wait, epoch_wait, parse_retry_after

        resp = exc.response
        if resp.headers.get("X-RateLimit-Remaining") == b"0":
            reset = resp.headers.get("X-RateLimit-Reset")
            when = describe_wait(epoch_wait(reset), reset)
            return str(resp.status), f"HTTP {resp.status}: rate limit exhausted until {when}"
        if resp.status in (429, 503) and resp.headers.get("Retry-After"):
            after = resp.headers.get("Retry-After")
            return str(resp.status), (f"HTTP {resp.status}: asked to retry after"
                                      f" {describe_wait(parse_retry_after(after), after)}")
        return str(resp.status), f"HTTP {resp.status}"
    if isinstance(exc, BlockedAddress):
        return "blocked", blocked_message(exc, getattr(failure, "request", None))
    if isinstance(exc, sx.DownloadCancelledError) or _MAXSIZE.search(str(exc)):
        return "too_large", f"larger than max_download_size ({one_line(exc, 160)})"
    if isinstance(exc, sx.IgnoreRequest) and "robots.txt" in str(exc):
        return "robots", "forbidden by robots.txt"
    if isinstance(exc, sx.IgnoreRequest) and "redirection" in str(exc):
        return "too_many_redirects", one_line(exc)
    if isinstance(exc, sx.IgnoreRequest):
        return "ignored", one_line(exc) or "request ignored"
    if isinstance(exc, sx.DownloadTimeoutError | terr.TimeoutError | terr.TCPTimedOutError):
        return "timeout", "timed out"
    if isinstance(exc, sx.CannotResolveHostError | terr.DNSLookupError):
        return "dns", "DNS lookup failed"
    if isinstance(exc, sx.DownloadConnectionRefusedError | terr.ConnectionRefusedError):
        return "connection", "connection refused"
    if isinstance(exc, sx.ResponseDataLossError | ResponseFailed):
        return "connection", "connection lost mid-response"
    if isinstance(exc, sx.DownloadFailedError | terr.ConnectError | terr.ConnectionLost
                  | terr.ConnectionDone):
        return "connection", one_line(exc) or "connection failed"
    name = type(exc).__name__
    return "error", f"{name}: {one_line(exc)}"


class SafeLogFormatter(LogFormatter):
    """Scrapy's default formatter prints whole items (document content) on
    scraped/dropped/error lines; identifiers must never reach a log."""

    def scraped(self, item: Any, response: Any, spider: Any) -> dict[str, Any]:
        return {"level": logging.DEBUG, "msg": "document from %(src)s: %(item)s",
                "args": {"src": getattr(response, "url", response), "item": item}}

    def dropped(self, item: Any, exception: BaseException, response: Any,
                spider: Any) -> dict[str, Any]:
        return {"level": logging.INFO, "msg": "dropped %(item)s: %(exc)s",
                "args": {"item": item, "exc": one_line(exception)}}

    def item_error(self, item: Any, exception: BaseException, response: Any,
                   spider: Any) -> dict[str, Any]:
        return {"level": logging.ERROR, "msg": "error processing %(item)s",
                "args": {"item": item}}


class SourceSpider(scrapy.Spider):
    """One crawl of one configured source. Subclasses set ``name`` to the kind."""

    name: ClassVar[str] = "source"  # type: ignore[misc]
    #: HTTP statuses the item callback wants to see instead of an errback
    item_statuses: ClassVar[list[int]] = []

    def __init__(self, source: SourceConfig, app: Settings, store: Store | None = None,
                 shard: Shard | None = None, items: list[dict[str, Any]] | None = None,
                 dispatch: Any = None, **kwargs: Any) -> None:
        super().__init__(name=self.name, **kwargs)
        self.app = app
        self.source = app.crawler.effective(source)
        self.store = store or Store(app.state)
        #: set when this crawl is one of several processes of the source (crawler.shard):
        #: only the items it owns are fetched, and the parent records the run
        self.shard = shard
        #: a part of a cluster run (scheduler.cluster.fanout): the listing hands its item
        #: requests to ``dispatch`` (batches for the workers); a batch fetches ``items``
        self.items = items
        self.dispatch = dispatch
        self.counters = RunCounters()
        self.started_at = datetime.now(UTC)
        self._deadline = time.monotonic() + float(self.source.timeout or DEFAULT_CRAWL_TIMEOUT)
        self.summary: RunSummary | None = None
        #: set when the state store could not be written (the crawl stops, run "error")
        self.store_failed: str | None = None
        #: set when even the run record could not be written
        self.run_unrecorded: str | None = None
        self._budget = int(self.source.max_items or 0)
        if shard is not None:
            self._budget = shard.share(self._budget)
        self._queued: set[str] = set()  # item ids requested in this run
        # the source's seen items, loaded once; first sightings are written behind in
        # batches (a crawl of 10,000 files must not cost 10,000 SQLite commits)
        self._seen: dict[str, seen.SeenItem] | None = None
        self._new_sightings: list[tuple[str, str | None]] = []
        self._flusher: Any = None
        self._token = resolve_secret(None, self.source.token_env) if self.source.token_env \
            else None
        self._source_host = urlsplit(self.source.all_urls[0]).hostname \
            if self.source.all_urls else None

    # -- wiring ------------------------------------------------------------------
    @classmethod
    def from_crawler(cls, crawler: Any, *args: Any, **kwargs: Any) -> SourceSpider:
        spider = super().from_crawler(crawler, *args, **kwargs)
        crawler.signals.connect(spider._on_spider_error, signal=signals.spider_error)
        crawler.signals.connect(spider._on_item_error, signal=signals.item_error)
        return spider

    def _on_spider_error(self, failure: Failure, response: Response, spider: Any) -> None:
        if storage_error(failure.value):
            self.storage_failed(failure.value)
            return
        # a callback raised (malformed JSON/HTML the parser could not survive): recorded
        self.record_error(getattr(response, "url", "?"),
                          f"{type(failure.value).__name__}: {one_line(failure.value)}",
                          role=response.meta.get("ls_role", "item") if response else "item")

    def _on_item_error(self, item: Any, response: Any, spider: Any, failure: Failure) -> None:
        if storage_error(failure.value):
            self.storage_failed(failure.value)
            return
        self.record_error(getattr(getattr(item, "document", None), "url", "?"),
                          f"pipeline: {type(failure.value).__name__}: "
                          f"{one_line(failure.value)}")

    # -- start -------------------------------------------------------------------
    async def start(self) -> AsyncIterator[Any]:
        from twisted.internet import task

        # CLOSESPIDER_TIMEOUT counts from here (spider opened), so does the download cap
        self._deadline = time.monotonic() + float(self.source.timeout or DEFAULT_CRAWL_TIMEOUT)
        self._flusher = task.LoopingCall(self.flush_seen)
        self._flusher.start(1.0, now=False)
        if self.counters.error is not None:  # e.g. the scanner could not start: fetch nothing
            return
        if self.items is not None:  # a batch of a cluster run: listed by another process
            for it in self.items:
                yield self.item_request(it["item_id"], it["url"], version=it.get("version"),
                                        filename=it.get("filename"), doc_url=it.get("doc_url"))
            return
        for item in seen.due_retries(self.store.conn, self.source.name,
                                     limit=max(self._budget, 1)):
            if not self.owns(item.item_id):
                continue
            req = self.retry_request(item)
            if req is not None or self.dispatch is not None:  # (a dispatched one is None)
                self._budget -= 1
                self._queued.add(item.item_id)
            if req is not None:
                yield req
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
                headers: dict[str, str] | None = None, **kwargs: Any) -> Request:
        """A Request carrying the source's headers, token, proxy and error handling."""
        own = urlsplit(url).hostname == self._source_host
        # credentials (the token, credential-like configured headers) go to the source's
        # own host only, and never follow a redirect to another origin
        hdrs = {k: v for k, v in self.source.headers.items() if own or not credential_header(k)}
        if self._token and own:
            hdrs[self.source.token_header] = self.source.token_format.format(token=self._token)
        hdrs.update(headers or {})
        m = {"ls_role": role, "ls_item_id": item_id, **(meta or {})}
        creds = [h for h in hdrs if h == self.source.token_header or credential_header(h)]
        if creds:  # for this origin only: dropped on a redirect elsewhere
            m.setdefault(ORIGIN_META, origin(url))
            m.setdefault(HEADERS_META, creds)
        if self.source.proxy:
            m.setdefault("proxy", self.source.proxy)
        # no download may outlive the crawl's own timeout (a stalled body would hold the
        # spider open past CLOSESPIDER_TIMEOUT)
        left = self._deadline - time.monotonic() + 2.0  # CLOSESPIDER_TIMEOUT fires first
        m.setdefault("download_timeout", max(1.0, min(float(self.source.download_timeout
                                                            or 60), left)))
        if role == "item" and self.item_statuses:
            m.setdefault("handle_httpstatus_list", list(self.item_statuses))
        kwargs.setdefault("errback", self.on_failure)
        return Request(url, callback=callback, headers=hdrs, meta=m, **kwargs)

    def item_request(self, item_id: str, url: str, *, version: str | None = None,
                     filename: str | None = None, doc_url: str | None = None,
                     **kwargs: Any) -> Request | None:
        """The request fetching one item's body; lands in :meth:`parse_item`.
        In a cluster run's listing, the item may go to a batch instead (None: Scrapy
        ignores it; ``dispatch.add`` returns False for the items the listing keeps)."""
        if self.dispatch is not None and not kwargs and self.dispatch.add(
                {"item_id": item_id, "url": url, "version": version, "filename": filename,
                 "doc_url": doc_url}):
            return None
        return self.request(url, self.parse_item, role="item", item_id=item_id,
                            cb_kwargs={"item_id": item_id, "version": version,
                                       "filename": filename, "doc_url": doc_url},
                            dont_filter=True, **kwargs)

    def parse_item(self, response: Response, item_id: str, version: str | None = None,
                   filename: str | None = None, doc_url: str | None = None) -> Iterator[Any]:
        item = self.make_document(response, item_id, version=version, filename=filename,
                                  url=doc_url)
        if item is not None:
            yield item

    # -- the seen store ----------------------------------------------------------
    def owns(self, item_id: str) -> bool:
        """Whether this process fetches the item (always, unless the crawl is sharded)."""
        return self.shard is None or self.shard.owns(item_id)

    def want(self, item_id: str, url: str | None = None, version: str | None = None) -> bool:
        """An item was listed: count it, record first-seen, and say whether to fetch it.

        Past the run's ``max_items`` budget the item stays pending in the store and is
        fetched by the next run. Another shard's item is not this crawl's business."""
        if not self.owns(item_id):
            return False
        self.counters.discovered += 1
        if item_id in self._queued:
            return False
        state = self.seen_item(item_id)
        if not seen.needs_fetch(state, version):
            return False
        if state is None or url:
            self._new_sightings.append((item_id, url))
            if len(self._new_sightings) >= 500:
                self.flush_seen()
        if self._budget <= 0:
            return False
        self._budget -= 1
        self._queued.add(item_id)
        return True

    def seen_item(self, item_id: str) -> seen.SeenItem | None:
        """The item's state as this crawl started (the seen store, read once)."""
        if self._seen is None:
            self._seen = seen.load_source(self.store.conn, self.source.name)
        return self._seen.get(item_id)

    def flush_seen(self) -> None:
        """Write the buffered first sightings (every second, per 500, before other writes)."""
        if self._new_sightings and self.store_failed is None:
            batch, self._new_sightings = self._new_sightings, []
            try:
                with self.store.transaction() as tx:
                    seen.discovered_many(tx, self.source.name, batch)
            except Exception as exc:
                if not storage_error(exc):
                    raise
                self.storage_failed(exc)  # the items are discovered again next run

    def make_document(self, response: Response, item_id: str, *, url: str | None = None,
                      filename: str | None = None, version: str | None = None,
                      content: bytes | None = None,
                      content_type: str | None = None) -> DocumentItem | None:
        """The pipeline item for a fetched body, or ``None`` when this content was
        processed for the item before (the seen state is refreshed)."""
        body = response.body if content is None else content
        self.counters.fetched += 1
        sha = hashlib.sha256(body).hexdigest()
        etag = _header(response, "ETag")
        last_modified = _header(response, "Last-Modified")
        state = self.seen_item(item_id)
        if state is not None and state.status == "done" and state.sha256 == sha:
            self.flush_seen()
            seen.unchanged(self.store.conn, self.source.name, item_id, version=version,
                           etag=etag, last_modified=last_modified)
            return None
        self.counters.new += 1
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
            delay = self.source.not_ready_delay
        when = datetime.now(UTC) + timedelta(seconds=60 if delay is None else delay)
        self.flush_seen()
        seen.requeue(self.store.conn, self.source.name, item_id, url, when, reason)
        self.counters.statuses["not_ready"] += 1
        self.logger.info("%s: not ready, re-queued for %s", url, when.isoformat())

    def item_gone(self, item_id: str, url: str, reason: str) -> None:
        """Deleted upstream: recorded, not an error, never retried."""
        self.flush_seen()
        seen.gone(self.store.conn, self.source.name, item_id, reason)
        self.counters.statuses["gone"] += 1
        self.logger.info("%s: gone (%s)", url, reason)

    def source_failed(self, message: str) -> None:
        """The source itself cannot be read: the run's outcome becomes "error"."""
        self.counters.errors += 1
        if self.counters.error is None:
            self.counters.error = one_line(message)
        self.logger.error("source failed: %s", one_line(message))

    def storage_failed(self, exc: BaseException) -> None:
        """The state store cannot be written (full disk, damaged file): nothing more can
        be recorded, so the crawl stops and its run is an error."""
        if self.store_failed is not None:
            return
        self.store_failed = str(store_failure(self.store.path, exc))
        self.source_failed(self.store_failed)
        engine = getattr(getattr(self, "crawler", None), "engine", None)
        if engine is not None and engine.spider is not None:
            from scrapy.utils.defer import deferred_from_coro

            deferred_from_coro(engine.close_spider_async(reason="store_failed"))

    def record_error(self, url: str, message: str, *, role: str = "item") -> None:
        if role == "discover":
            self.source_failed(f"{url}: {message}")
            return
        self.counters.errors += 1
        self.logger.warning("%s: %s", url, one_line(message))

    def on_failure(self, failure: Failure) -> None:
        """Errback: count, classify, re-queue a failed item with backoff."""
        request = failure.request  # type: ignore[attr-defined]
        key, message = classify_failure(failure)
        if not key.isdigit():  # HTTP statuses are counted when the response arrives
            self.counters.statuses[key] += 1
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
        self.flush_seen()
        state = seen.get_item(self.store.conn, self.source.name, item_id)
        attempts = state.attempts if state else 0
        # between runs: a minute, doubling per failed attempt, at most backoff_cap
        base = float(self.source.backoff_base if self.source.backoff_base is not None
                     else DEFAULT_BACKOFF_BASE)
        cap = float(self.source.backoff_cap if self.source.backoff_cap is not None
                    else DEFAULT_BACKOFF_CAP)
        delay = min(cap, max(base, 60.0) * (2 ** attempts))
        seen.requeue(self.store.conn, self.source.name, item_id, url,
                     datetime.now(UTC) + timedelta(seconds=delay), message,
                     max_attempts=1 if permanent else 10)

    # -- closing -------------------------------------------------------------------
    def outcome_for(self, reason: str) -> str:
        if self.counters.error is not None:
            return "error"
        if reason == "finished":
            return "ok"
        if reason == "closespider_timeout":
            self.counters.error = f"crawl stopped after its timeout ({self.source.timeout:g}s)"
            return "timeout"
        if reason == "shutdown":
            self.counters.error = "crawl interrupted"
            return "killed"
        self.counters.error = f"crawl closed: {reason}"
        return "error"

    def _record_run(self) -> None:
        assert self.summary is not None
        with self.store.transaction() as tx:
            record_run(tx, self.summary, unhealthy_after=int(self.source.unhealthy_after
                                                         or DEFAULT_UNHEALTHY_AFTER))

    def closed(self, reason: str) -> None:
        if self._flusher is not None and self._flusher.running:
            self._flusher.stop()
        self.flush_seen()
        outcome = self.outcome_for(reason)
        self.summary = self.counters.summary(self.source.name, self.started_at,
                                             datetime.now(UTC), outcome)
        if self.shard is not None or self.items is not None or self.dispatch is not None:
            # the parent (shards) or the cluster run (parts) records the merged run
            self.logger.info("part done: %s discovered=%d fetched=%d new=%d hits=%d "
                             "errors=%d", outcome, self.summary.discovered,
                             self.summary.fetched, self.summary.new, self.summary.hits,
                             self.summary.errors)
            return
        try:
            self._record_run()
        except Exception as exc:
            if not storage_error(exc):
                raise
            # a full disk: spend the store's reserve on the run record
            try:
                if not self.store.release_reserve():
                    raise
                self._record_run()
            except Exception as again:
                if not storage_error(again):
                    raise
            else:
                self.logger.info("run recorded (reserve space used): %s", outcome)
                return
            # the runner reports it (one line, exit 2): no run record to read back
            self.store_failed = self.store_failed or str(store_failure(self.store.path, exc))
            self.run_unrecorded = str(store_failure(self.store.path, exc))
            self.logger.error("run not recorded: %s", self.run_unrecorded)
            return
        self.logger.info("run recorded: %s discovered=%d fetched=%d new=%d hits=%d errors=%d",
                         outcome, self.summary.discovered, self.summary.fetched,
                         self.summary.new, self.summary.hits, self.summary.errors)


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
