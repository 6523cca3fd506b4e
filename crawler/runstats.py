"""What a crawl did, counted in ``crawler.stats`` (Scrapy's stats collector).

The run record (:class:`pipelines.model.RunSummary`) is read from these keys when the
spider closes (crawler.runs), or by the runner's watchdog when a crawl has to be ended.
HTTP statuses are Scrapy's own ``downloader/response_status_count/<code>`` (DownloaderStats
sits next to the downloader, so retried and redirected responses are counted too); other
outcomes of an item (``not_ready``, ``gone``, ``timeout``, ``too_large`` ...) are
``leaksentry/status/<key>``.
"""

from __future__ import annotations

import logging
from collections import Counter
from datetime import datetime
from typing import Any

from scrapy.crawler import Crawler

from crawler.logformat import one_line
from pipelines.model import RunSummary

log = logging.getLogger(__name__)

DISCOVERED = "leaksentry/discovered"  # items listed (owned by this process)
FETCHED = "leaksentry/fetched"  # item bodies downloaded
NEW = "leaksentry/new"  # ... whose content was not processed before
HITS = "leaksentry/hits"  # documents the scanner found identifiers in
ERRORS = "leaksentry/errors"  # failed items, and source-level failures
ERROR = "leaksentry/error"  # the first source-level failure, one line
STATUS = "leaksentry/status/"
HTTP_STATUS = "downloader/response_status_count/"


def count_status(stats: Any, key: str, count: int = 1) -> None:
    stats.inc_value(STATUS + key, count)


def set_error(stats: Any, message: str) -> None:
    """The run's error, unless one was set before (the first failure is the cause)."""
    if stats.get_value(ERROR) is None:
        stats.set_value(ERROR, message)


def statuses(stats: dict[str, Any]) -> dict[str, int]:
    out: Counter[str] = Counter()
    for key, value in stats.items():
        if key.startswith(HTTP_STATUS):
            out[key[len(HTTP_STATUS):]] += int(value)
        elif key.startswith(STATUS):
            out[key[len(STATUS):]] += int(value)
    return dict(sorted(out.items()))


def summary(stats: dict[str, Any], source: str, started: datetime, finished: datetime,
            outcome: str) -> RunSummary:
    """The run record of a crawl from its stats (``crawler.stats.get_stats()``)."""
    return RunSummary(source=source, started_at=started, finished_at=finished,
                      outcome=outcome, discovered=int(stats.get(DISCOVERED, 0)),
                      fetched=int(stats.get(FETCHED, 0)), new=int(stats.get(NEW, 0)),
                      hits=int(stats.get(HITS, 0)), errors=int(stats.get(ERRORS, 0)),
                      statuses=statuses(stats), error=stats.get(ERROR))


def _logger(crawler: Crawler) -> Any:
    spider = getattr(crawler, "spider", None)
    return spider.logger if spider is not None else log


def source_failed(crawler: Crawler, message: str) -> None:
    """The source itself cannot be read: the run's outcome becomes "error"."""
    text = one_line(message)
    crawler.stats.inc_value(ERRORS)
    set_error(crawler.stats, text)
    _logger(crawler).error("source failed: %s", text)


def record_error(crawler: Crawler, url: str, message: str, *, role: str = "item") -> None:
    """A failed request or callback: an item's failure is counted, a discovery request's
    (a listing page) fails the source."""
    if role == "discover":
        source_failed(crawler, f"{url}: {message}")
        return
    crawler.stats.inc_value(ERRORS)
    _logger(crawler).warning("%s: %s", url, one_line(message))
