"""No download outlives the crawl's own deadline.

A stalled body would hold the spider open past ``CLOSESPIDER_TIMEOUT``; every request's
``download_timeout`` (Scrapy's DownloadTimeoutMiddleware sets it from
``DOWNLOAD_TIMEOUT``) is therefore capped by the time the crawl has left, counted from
the spider's opening, plus a little: CLOSESPIDER_TIMEOUT fires first.
"""

from __future__ import annotations

import time

from scrapy import signals
from scrapy.crawler import Crawler
from scrapy.http import Request

from leaksentry.config.sources import DEFAULT_CRAWL_TIMEOUT

#: seconds past the deadline a download may last (the close fires first)
SLACK = 2.0


class DeadlineMiddleware:
    def __init__(self, timeout: float, download_timeout: float) -> None:
        self.timeout = timeout
        self.download_timeout = download_timeout
        self.deadline = time.monotonic() + timeout

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> DeadlineMiddleware:
        s = crawler.settings
        mw = cls(s.getfloat("CLOSESPIDER_TIMEOUT") or DEFAULT_CRAWL_TIMEOUT,
                 s.getfloat("DOWNLOAD_TIMEOUT") or 60.0)
        crawler.signals.connect(mw.spider_opened, signal=signals.spider_opened)
        return mw

    def spider_opened(self) -> None:
        self.deadline = time.monotonic() + self.timeout  # CLOSESPIDER_TIMEOUT counts from here

    def process_request(self, request: Request) -> None:
        left = self.deadline - time.monotonic() + SLACK
        wanted = float(request.meta.get("download_timeout") or self.download_timeout)
        request.meta["download_timeout"] = max(1.0, min(wanted, left))
