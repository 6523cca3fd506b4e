"""Counts every HTTP response by status into the spider's run counters.

It sits next to the downloader, so responses that a middleware answers with a
retry (429, 503, 500) or a redirect (30x) are counted too; the engine's
``response_received`` signal sees only the final response."""

from __future__ import annotations

from typing import Any

from scrapy.http import Request, Response


class StatusCounterMiddleware:
    def __init__(self, crawler: Any) -> None:
        self.crawler = crawler

    @classmethod
    def from_crawler(cls, crawler: Any) -> StatusCounterMiddleware:
        return cls(crawler)

    def process_response(self, request: Request, response: Response) -> Response:
        counters = getattr(self.crawler.spider, "counters", None)
        if counters is not None:
            counters.statuses[str(response.status)] += 1
        return response
