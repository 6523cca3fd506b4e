"""Failed requests and callbacks: what went wrong, as a status key and one line.

:func:`classify_failure` names a failed request's cause (the run's ``statuses`` key and
its message); :class:`CallbackErrors` counts the exceptions raised by spider callbacks
and the item pipeline into the run (a storage failure stops the crawl instead).
"""

from __future__ import annotations

import re
from typing import Any

from scrapy import exceptions as sx
from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.spidermiddlewares.httperror import HttpError
from twisted.internet import error as terr
from twisted.python.failure import Failure
from twisted.web._newclient import ResponseFailed

from crawler.logformat import one_line
from crawler.middlewares.backoff import describe_wait, epoch_wait, parse_retry_after
from crawler.middlewares.guard import BlockedAddress
from crawler.runstats import record_error
from crawler.state import StateStore
from leaksentry.store.failures import storage_error

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
    exc = failure.value
    if isinstance(exc, HttpError):
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


class CallbackErrors:
    """Extension: an exception in a spider callback (malformed JSON/HTML the parser could
    not survive) or in the item pipeline is counted as a failed item (a failed source
    for a discovery page); a storage failure stops the crawl."""

    def __init__(self, crawler: Crawler) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> CallbackErrors:
        ext = cls(crawler)
        crawler.signals.connect(ext.spider_error, signal=signals.spider_error)
        crawler.signals.connect(ext.item_error, signal=signals.item_error)
        return ext

    def spider_error(self, failure: Failure, response: Any, spider: Any = None) -> None:
        exc = _exception(failure)
        if storage_error(exc):
            StateStore.of(self.crawler).failed(exc)
            return
        record_error(self.crawler, getattr(response, "url", "?"),
                     f"{type(exc).__name__}: {one_line(exc)}",
                     role=response.meta.get("ls_role", "item") if response else "item")

    def item_error(self, item: Any, response: Any, spider: Any = None,
                   failure: Failure | None = None) -> None:
        exc = _exception(failure)
        if storage_error(exc):
            StateStore.of(self.crawler).failed(exc)
            return
        record_error(self.crawler, getattr(getattr(item, "document", None), "url", "?"),
                     f"pipeline: {type(exc).__name__}: {one_line(exc)}")


def _exception(failure: Failure | None) -> BaseException:
    exc = failure.value if failure is not None else None
    return exc if exc is not None else RuntimeError("unknown failure")
