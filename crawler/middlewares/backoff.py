"""Retries with Retry-After and capped exponential backoff (replaces Scrapy's
RetryMiddleware, which retries at once and ignores Retry-After).

* 429 and 503 honour ``Retry-After`` (seconds or an HTTP date, RFC 9110 §10.2.3);
  GitHub's ``X-RateLimit-Remaining: 0`` + ``X-RateLimit-Reset`` (epoch seconds) on
  403/429 is treated the same way.
* Other transient failures (500, 502, 504, 408, 522, 524, timeouts, lost
  connections) wait ``backoff_base * 2**n``.
* No wait is longer than ``backoff_cap``: a server asking for more gets the
  response passed on (the spider re-queues the item in the store for later),
  rather than a crawl sleeping past its timeout.

Waiting is ``await asyncio.sleep`` inside the middleware: it holds only this
request, the rest of the crawl goes on.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import time
from datetime import UTC, datetime
from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response
from scrapy.utils.misc import load_object

from leaksentry.config.sources import DEFAULT_BACKOFF_BASE, DEFAULT_BACKOFF_CAP

log = logging.getLogger(__name__)

RETRY_STATUSES = frozenset({408, 429, 500, 502, 503, 504, 522, 524})
RATE_LIMIT_STATUSES = frozenset({403, 429})


#: no server-given wait is taken as longer than this (absurd values are clamped, never
#: turned into dates a year 3170843 would not fit in)
MAX_WAIT = 365 * 86400.0


def _text(value: str | bytes | None) -> str | None:
    if value is None:
        return None
    if isinstance(value, bytes):
        value = value.decode("latin-1", "replace")
    return value.strip()[:64]


def _now(now: float | None) -> float:
    return time.time() if now is None else now


def parse_retry_after(value: str | bytes | None, now: float | None = None) -> float | None:
    """Seconds to wait from a Retry-After value (delta-seconds or HTTP-date), at most
    :data:`MAX_WAIT`; None when it is neither."""
    text = _text(value)
    if not text:
        return None
    if text.isascii() and text.isdigit():
        return min(MAX_WAIT, float(text))
    try:
        when = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if when is None:
        return None
    return min(MAX_WAIT, max(0.0, when.timestamp() - _now(now)))


def epoch_wait(value: str | bytes | None, now: float | None = None) -> float | None:
    """Seconds until an epoch time given by a header (``X-RateLimit-Reset``), clamped to
    ``[0, MAX_WAIT]``; None when it is not a number."""
    text = _text(value)
    try:
        epoch = float(text) if text and text.isascii() else math.nan
    except ValueError:
        return None
    if math.isnan(epoch):
        return None
    return min(MAX_WAIT, max(0.0, epoch - _now(now)))


def describe_wait(wait: float | None, raw: str | bytes | None) -> str:
    """A wait for a message: the UTC time it ends, or the (clipped) raw header value."""
    if wait is None:
        return repr(_text(raw) or "?")
    return datetime.fromtimestamp(time.time() + wait, UTC).isoformat(timespec="seconds")


def rate_limit_wait(response: Response, now: float | None = None) -> float | None:
    """Seconds until the server lets us in again, from the response headers."""
    if response.status in (429, 503) or (response.status == 403
                                          and response.headers.get("Retry-After")):
        wait = parse_retry_after(response.headers.get("Retry-After"), now)
        if wait is not None:
            return wait
    remaining = response.headers.get("X-RateLimit-Remaining")
    reset = response.headers.get("X-RateLimit-Reset")
    if response.status in RATE_LIMIT_STATUSES and remaining == b"0" and reset:
        return epoch_wait(reset, now)
    return None


class BackoffRetryMiddleware:
    def __init__(self, max_retries: int, base: float, cap: float,
                 exceptions: tuple[type[BaseException], ...] = ()) -> None:
        self.max_retries = max_retries
        self.base = base
        self.cap = cap
        self.exceptions = exceptions

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> BackoffRetryMiddleware:
        s = crawler.settings
        if not s.getbool("RETRY_ENABLED"):
            raise NotConfigured
        exceptions = tuple(load_object(x) if isinstance(x, str) else x
                           for x in s.getlist("RETRY_EXCEPTIONS"))
        return cls(s.getint("RETRY_TIMES"),
                   s.getfloat("LEAKSENTRY_BACKOFF_BASE", DEFAULT_BACKOFF_BASE),
                   s.getfloat("LEAKSENTRY_BACKOFF_CAP", DEFAULT_BACKOFF_CAP), exceptions)

    def _next(self, request: Request, reason: str, wait: float | None) -> Request | None:
        if request.meta.get("dont_retry"):
            return None
        tries = request.meta.get("retry_times", 0) + 1
        if tries > self.max_retries:
            log.info("%s: giving up after %d retries (%s)", request.url, tries - 1, reason)
            return None
        delay = wait if wait is not None else self.base * (2 ** (tries - 1))
        if delay > self.cap:
            log.info("%s: server asks to wait %.0fs, more than backoff_cap %.0fs: not retrying"
                     " now", request.url, delay, self.cap)
            return None
        retry = request.copy()
        retry.meta["retry_times"] = tries
        retry.meta["ls_retry_delay"] = delay
        retry.dont_filter = True
        retry.priority = request.priority - 1
        log.info("%s: %s, retry %d in %.1fs", request.url, reason, tries, delay)
        return retry

    async def process_response(self, request: Request, response: Response) -> Any:
        wait = rate_limit_wait(response)
        if response.status in RETRY_STATUSES or wait is not None:
            if response.status in request.meta.get("handle_httpstatus_list", ()):
                return response
            retry = self._next(request, f"HTTP {response.status}", wait)
            if retry is not None:
                await asyncio.sleep(retry.meta["ls_retry_delay"])
                return retry
        return response

    async def process_exception(self, request: Request, exception: BaseException) -> Any:
        if isinstance(exception, self.exceptions):
            retry = self._next(request, type(exception).__name__, None)
            if retry is not None:
                await asyncio.sleep(retry.meta["ls_retry_delay"])
                return retry
        return None
