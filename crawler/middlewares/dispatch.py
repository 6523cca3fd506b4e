"""A cluster run's listing hands its items to batches for the workers (a spider
middleware; scheduler.cluster.fanout).

A plain item GET the seen filter and the budget let through carries its entry
(:data:`crawler.middlewares.seen.DISPATCH`); the run's dispatcher (the spider's
``dispatch`` argument) takes it for a batch, or leaves it to this process. Crawls that
are not a cluster listing do without this middleware.
"""

from __future__ import annotations

from typing import Any

from scrapy.crawler import Crawler
from scrapy.exceptions import NotConfigured
from scrapy.http import Request, Response
from scrapy.spidermiddlewares.base import BaseSpiderMiddleware

from crawler.middlewares.seen import DISPATCH


class ClusterDispatchMiddleware(BaseSpiderMiddleware):
    def __init__(self, crawler: Crawler, dispatch: Any) -> None:
        super().__init__(crawler)
        self.dispatch = dispatch

    @classmethod
    def from_crawler(cls, crawler: Crawler) -> ClusterDispatchMiddleware:
        dispatch = getattr(crawler.spider, "dispatch", None)  # the spider exists by now
        if dispatch is None:
            raise NotConfigured
        return cls(crawler, dispatch)

    def get_processed_request(self, request: Request, response: Response | None
                              ) -> Request | None:
        entry = request.meta.get(DISPATCH)
        if entry is not None and self.dispatch.add(entry):
            return None  # a batch fetches it
        return request
